//! powerfs tests: the overlay against a plain model, then the filesystem
//! through a real FUSE mount (skipped, with a message, where FUSE is missing).

mod durability;
mod ferryd;
mod log_file;
mod mounting;
mod namespace;
mod overlay_model;

use std::fs;
use std::path::PathBuf;

use tempfile::TempDir;

use super::{fuse_available, mount_with, Mounted, Options};

/// A powerfs mounted over a fresh backing directory, both in a temp dir.
struct Fixture {
    // Declared first so it is dropped (unmounted) before the temp dir goes.
    mount: Mounted,
    dir: TempDir,
}

impl Fixture {
    /// Mounts one, or returns `None` (after saying why) where FUSE is missing.
    fn new() -> Option<Self> {
        Self::with(&Options::default())
    }

    fn with(options: &Options) -> Option<Self> {
        if let Err(reason) = fuse_available() {
            eprintln!("skipping powerfs test: {reason}");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let (backing, mountpoint) = (dir.path().join("disk"), dir.path().join("mnt"));
        fs::create_dir(&backing).expect("create backing dir");
        fs::create_dir(&mountpoint).expect("create mountpoint");
        let mount = mount_with(&backing, &mountpoint, options).expect("mount powerfs");
        Some(Self { mount, dir })
    }

    /// `name` as programs see it, on the mount.
    fn path(&self, name: &str) -> PathBuf {
        self.mount.mountpoint().join(name)
    }

    /// `name` on the disk, under the mount.
    fn disk(&self, name: &str) -> PathBuf {
        self.mount.backing().join(name)
    }

    /// Unmounts, handing back the temp dir so the disk can be inspected.
    fn unmount(self) -> (anyhow::Result<()>, TempDir) {
        (self.mount.unmount(), self.dir)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.path(name)).expect("read through the mount")
    }
}
