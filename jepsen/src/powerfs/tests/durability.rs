//! What survives a power loss: file data only once fsynced, names at once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};

use super::Fixture;
use crate::powerfs::{LossReport, Options};

#[test]
fn unsynced_write_is_lost_but_the_new_file_stays_empty() {
    let Some(fx) = Fixture::new() else { return };
    fs::write(fx.path("a"), b"hello").expect("write");
    assert_eq!(fx.read("a"), b"hello", "readers see unsynced data");
    assert_eq!(fs::read(fx.disk("a")).expect("read disk"), b"", "the disk does not");

    assert_eq!(fx.mount.lose_unsynced(), LossReport { files: 1, bytes: 5, paths: vec!["a".into()] });
    assert_eq!(fx.read("a"), b"");
}

#[test]
fn fsynced_write_survives() {
    let Some(fx) = Fixture::new() else { return };
    let mut file = File::create(fx.path("a")).expect("create");
    file.write_all(b"durable").expect("write");
    file.sync_all().expect("fsync");
    drop(file);

    assert_eq!(fx.mount.lose_unsynced(), LossReport::default());
    assert_eq!(fx.read("a"), b"durable");
    assert_eq!(fs::read(fx.disk("a")).expect("read disk"), b"durable");
}

#[test]
fn power_loss_goes_back_to_the_last_fsync() {
    let Some(fx) = Fixture::new() else { return };
    let mut file = File::create(fx.path("a")).expect("create");
    file.write_all(b"AAAA").expect("write");
    file.sync_data().expect("fdatasync");
    file.write_all(b"BBBB").expect("write");
    drop(file);
    assert_eq!(fx.read("a"), b"AAAABBBB");

    assert_eq!(fx.mount.lose_unsynced(), LossReport { files: 1, bytes: 4, paths: vec!["a".into()] });
    assert_eq!(fx.read("a"), b"AAAA");
}

#[test]
fn unsynced_truncation_is_undone() {
    let Some(fx) = Fixture::new() else { return };
    let mut file = File::create(fx.path("a")).expect("create");
    file.write_all(b"old content").expect("write");
    file.sync_all().expect("fsync");
    drop(file);
    fs::write(fx.path("a"), b"new").expect("rewrite without fsync");
    assert_eq!(fx.read("a"), b"new");

    fx.mount.lose_unsynced();
    assert_eq!(fx.read("a"), b"old content");
}

#[test]
fn truncating_then_growing_reads_zeros_before_and_after_fsync() {
    let Some(fx) = Fixture::new() else { return };
    let file = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(fx.path("a")).expect("open");
    (&file).write_all(b"abcdef").expect("write");
    file.sync_all().expect("fsync");
    file.set_len(2).expect("shrink");
    file.set_len(6).expect("grow");
    assert_eq!(fx.read("a"), b"ab\0\0\0\0");
    file.sync_all().expect("fsync");
    drop(file);

    fx.mount.lose_unsynced();
    assert_eq!(fx.read("a"), b"ab\0\0\0\0");
    assert_eq!(fs::read(fx.disk("a")).expect("read disk"), b"ab\0\0\0\0");
}

#[test]
fn fsync_through_another_handle_syncs_the_whole_file() {
    let Some(fx) = Fixture::new() else { return };
    let mut writer = File::create(fx.path("a")).expect("create");
    writer.write_all(b"written by one handle").expect("write");
    File::open(fx.path("a")).expect("open read-only").sync_all().expect("fsync another handle");
    drop(writer);

    assert_eq!(fx.mount.lose_unsynced(), LossReport::default());
    assert_eq!(fx.read("a"), b"written by one handle");
}

#[test]
fn writes_past_the_unsynced_limit_fail_with_enospc_until_an_fsync() {
    let Some(fx) = Fixture::with(&Options { unsynced_bytes_max: 64 << 10 }) else { return };
    let mut file = File::create(fx.path("a")).expect("create");
    file.write_all(&[1; 48 << 10]).expect("write under the limit");
    let refused = file.write_all(&[2; 32 << 10]).expect_err("write over the limit");
    assert_eq!(refused.kind(), io::ErrorKind::StorageFull, "{refused}");
    assert_eq!(fx.mount.stats().refused_writes, 1);

    file.sync_data().expect("fdatasync");
    file.write_all(&[2; 32 << 10]).expect("room again after the fsync");
    assert_eq!(fx.mount.stats().unsynced_bytes, 32 << 10);
}

#[test]
fn a_full_disk_refuses_new_data_keeps_serving_reads_and_recovers_when_freed() {
    let Some(fx) = Fixture::new() else { return };
    let mut file = File::create(fx.path("a")).expect("create");
    file.write_all(b"before").expect("write");
    file.sync_data().expect("fdatasync");

    fx.mount.set_disk_full(true);
    let refused = file.write_all(b"during").expect_err("a write to a full disk");
    assert_eq!(refused.kind(), io::ErrorKind::StorageFull, "{refused}");
    let refused = File::create(fx.path("b")).expect_err("a create on a full disk");
    assert_eq!(refused.kind(), io::ErrorKind::StorageFull, "{refused}");
    assert_eq!(fx.read("a"), b"before", "reads go on while the disk is full");
    assert_eq!(fx.mount.stats().refused_writes, 2);

    fx.mount.set_disk_full(false);
    file.write_all(b" after").expect("a write once space returns");
    assert_eq!(fx.read("a"), b"before after");
}
