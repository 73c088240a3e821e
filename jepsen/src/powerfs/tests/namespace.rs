//! Names change at once and take unsynced data with them: rename moves it,
//! unlink drops it, a hard link shares it.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use super::Fixture;
use crate::powerfs::LossReport;

#[test]
fn rename_carries_unsynced_data_to_the_new_name() {
    let Some(fx) = Fixture::new() else { return };
    fs::write(fx.path("CURRENT.tmp"), b"MANIFEST-000005\n").expect("write");
    fs::rename(fx.path("CURRENT.tmp"), fx.path("CURRENT")).expect("rename");
    assert_eq!(fx.read("CURRENT"), b"MANIFEST-000005\n");
    File::open(fx.path("CURRENT")).expect("open").sync_all().expect("fsync");

    assert_eq!(fx.mount.lose_unsynced(), LossReport::default());
    assert_eq!(fx.read("CURRENT"), b"MANIFEST-000005\n");
    assert!(!fx.path("CURRENT.tmp").exists());
}

#[test]
fn renamed_unsynced_data_is_lost_but_the_rename_is_not() {
    let Some(fx) = Fixture::new() else { return };
    fs::write(fx.path("tmp"), b"never synced").expect("write");
    fs::rename(fx.path("tmp"), fx.path("final")).expect("rename");

    assert_eq!(fx.mount.lose_unsynced().files, 1);
    assert_eq!(fx.read("final"), b"");
    assert!(!fx.path("tmp").exists());
}

#[test]
fn rename_over_a_file_drops_the_replaced_files_unsynced_data() {
    let Some(fx) = Fixture::new() else { return };
    fs::write(fx.path("a"), b"aaa").expect("write a");
    fs::write(fx.path("b"), b"bbbbbb").expect("write b");
    fs::rename(fx.path("a"), fx.path("b")).expect("rename");

    let stats = fx.mount.stats();
    assert_eq!((stats.unsynced_files, stats.unsynced_bytes), (1, 3));
    assert_eq!(fx.read("b"), b"aaa");
}

#[test]
fn unlink_drops_unsynced_data() {
    let Some(fx) = Fixture::new() else { return };
    fs::write(fx.path("a"), b"doomed").expect("write");
    fs::remove_file(fx.path("a")).expect("unlink");

    assert_eq!(fx.mount.stats().unsynced_bytes, 0);
    assert_eq!(fx.mount.lose_unsynced(), LossReport::default());
    assert!(!fx.disk("a").exists());
}

#[test]
fn unlinked_file_stays_readable_through_an_open_handle() {
    let Some(fx) = Fixture::new() else { return };
    let mut file =
        OpenOptions::new().create(true).truncate(true).read(true).write(true).open(fx.path("a")).expect("open");
    file.write_all(b"still here").expect("write");
    fs::remove_file(fx.path("a")).expect("unlink");
    file.seek(SeekFrom::Start(0)).expect("seek");
    let mut text = String::new();
    file.read_to_string(&mut text).expect("read");
    assert_eq!(text, "still here");
    assert_eq!(fx.mount.stats().unsynced_bytes, 10, "kept while open");

    drop(file);
    // The kernel sends the release after close returns.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fx.mount.stats().unsynced_bytes != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(fx.mount.stats().unsynced_bytes, 0, "dropped with the last handle");
}

#[test]
fn hard_link_shares_unsynced_data_and_its_fsync() {
    let Some(fx) = Fixture::new() else { return };
    fs::write(fx.path("a"), b"shared").expect("write");
    fs::hard_link(fx.path("a"), fx.path("b")).expect("link");
    assert_eq!(fx.read("b"), b"shared");
    File::open(fx.path("b")).expect("open").sync_all().expect("fsync");

    assert_eq!(fx.mount.lose_unsynced(), LossReport::default());
    assert_eq!(fx.read("a"), b"shared");
    fs::remove_file(fx.path("a")).expect("unlink one name");
    assert_eq!(fx.read("b"), b"shared");
}

#[test]
fn renamed_directory_keeps_its_files_unsynced_data() {
    let Some(fx) = Fixture::new() else { return };
    fs::create_dir(fx.path("d")).expect("mkdir");
    fs::write(fx.path("d/f"), b"inside").expect("write");
    fs::rename(fx.path("d"), fx.path("e")).expect("rename dir");
    assert_eq!(fx.read("e/f"), b"inside");
    File::open(fx.path("e/f")).expect("open").sync_all().expect("fsync");

    assert_eq!(fx.mount.lose_unsynced(), LossReport::default());
    assert_eq!(fx.read("e/f"), b"inside");
}

#[test]
fn directories_list_and_remove_like_the_disk() {
    let Some(fx) = Fixture::new() else { return };
    fs::create_dir_all(fx.path("d/sub")).expect("mkdir");
    for name in ["y", "x"] {
        fs::write(fx.path(&format!("d/{name}")), name).expect("write");
    }
    File::open(fx.path("d")).expect("open dir").sync_all().expect("fsync dir");
    let mut names: Vec<String> = fs::read_dir(fx.path("d"))
        .expect("list")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["sub", "x", "y"]);

    fs::remove_dir_all(fx.path("d")).expect("remove");
    assert!(!fx.disk("d").exists());
}
