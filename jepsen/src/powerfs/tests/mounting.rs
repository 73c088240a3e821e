//! Mounting and unmounting.

use std::fs::{self, File};
use std::io::Write;

use super::Fixture;
use crate::powerfs::mount;

#[test]
fn unmount_leaves_exactly_the_durable_data_on_the_disk() {
    let Some(fx) = Fixture::new() else { return };
    let mut synced = File::create(fx.path("synced")).expect("create");
    synced.write_all(b"kept").expect("write");
    synced.sync_all().expect("fsync");
    drop(synced);
    fs::write(fx.path("unsynced"), b"dropped").expect("write");
    let mountpoint = fx.mount.mountpoint().to_path_buf();

    let (unmounted, dir) = fx.unmount();
    unmounted.expect("unmount");
    let mounts = fs::read_to_string("/proc/self/mounts").expect("read mounts");
    assert!(!mounts.contains(&*mountpoint.to_string_lossy()), "still mounted");
    assert_eq!(fs::read(dir.path().join("disk/synced")).expect("read disk"), b"kept");
    assert_eq!(fs::read(dir.path().join("disk/unsynced")).expect("read disk"), b"");
}

#[test]
fn mount_refuses_a_mountpoint_inside_its_backing_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let inside = dir.path().join("mnt");
    fs::create_dir(&inside).expect("mkdir");
    let refused = mount(dir.path(), &inside).expect_err("nested mount");
    assert!(refused.to_string().contains("must not contain each other"), "{refused}");
}
