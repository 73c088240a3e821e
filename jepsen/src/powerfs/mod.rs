//! A FUSE filesystem that loses every write not fsynced when the power goes.
//!
//! A SIGKILL cannot test durability: the kernel's page cache outlives the
//! process, so a server that acknowledges before fsync looks fine. `powerfs`
//! is mounted where a node keeps its data and passes everything through to a
//! backing directory (the "disk"), except file data: writes and truncations
//! stay in memory, per file, until that file is fsynced. [`Mounted::lose_unsynced`]
//! throws them away, and the node restarts on exactly what was durable.
//!
//! What is durable when:
//! - **file data and length**: only after `fsync`/`fdatasync` of that file
//!   (through any handle). `close` is not durable.
//! - **names** (create, mkdir, rename, unlink, link): at once. This is
//!   stricter than a real filesystem, where a new name also needs an fsync
//!   of its directory, so a missing directory fsync is not caught.
//!
//! Unsynced data is bounded ([`Options::unsynced_bytes_max`], 1 GiB by
//! default); a write past the bound fails with ENOSPC rather than being made
//! durable behind the program's back, and is counted in [`Stats::refused_writes`].
//!
//! The disk can also be made full ([`Mounted::set_disk_full`]): writes,
//! creates, mkdirs and links then fail with ENOSPC, and statfs shows no free
//! space; reads, fsyncs of what was already written, renames and unlinks
//! still work, as on a real full disk.
//!
//! The FUSE session runs on a thread of the calling process: if that process
//! dies, the mount breaks ("Transport endpoint is not connected"). Not
//! supported: symlinks, device nodes, `fallocate` (EOPNOTSUPP), renameat2
//! flags; file locks are left to the kernel, which handles them locally.
//!
//! **API Boundary:** [`mount`], [`mount_with`], [`Mounted`] and the report
//! types; the modules below are free to change.

mod attr;
mod files;
mod fs;
mod inodes;
mod overlay;
mod state;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use fuser::{BackgroundSession, INodeNo, MountOption, Notifier};
use serde::Serialize;

use self::state::State;

/// What a power loss threw away.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LossReport {
    /// Files that had unsynced changes (data or length).
    pub files: u64,
    /// Unsynced bytes written to them.
    pub bytes: u64,
    /// Where those files are, relative to the mountpoint, sorted (an
    /// unlinked file that was still open has no name and is not listed).
    pub paths: Vec<PathBuf>,
}

/// What a power loss would throw away now, and what was refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub unsynced_files: u64,
    pub unsynced_bytes: u64,
    /// Operations failed with ENOSPC: past [`Options::unsynced_bytes_max`],
    /// or while the disk was full.
    pub refused_writes: u64,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Unsynced bytes held in memory across all files, at most.
    pub unsynced_bytes_max: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { unsynced_bytes_max: 1 << 30 }
    }
}

/// Whether this machine can mount FUSE filesystems; the reason if not.
pub fn fuse_available() -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse is missing".into());
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("fusermount3").exists()));
    if !on_path {
        return Err("fusermount3 is not on PATH (Debian package fuse3)".into());
    }
    Ok(())
}

/// Mounts a power-loss filesystem at `mountpoint` over `backing`, with
/// default [`Options`].
pub fn mount(backing: &Path, mountpoint: &Path) -> anyhow::Result<Mounted> {
    mount_with(backing, mountpoint, &Options::default())
}

/// Mounts a power-loss filesystem at `mountpoint` over `backing`. Both must
/// be existing directories, neither inside the other.
pub fn mount_with(backing: &Path, mountpoint: &Path, options: &Options) -> anyhow::Result<Mounted> {
    let canonical = |path: &Path| path.canonicalize().with_context(|| format!("powerfs: {}", path.display()));
    let (backing, mountpoint) = (canonical(backing)?, canonical(mountpoint)?);
    // A mountpoint inside the backing directory would make us read our own
    // mount while serving it, and deadlock.
    if backing.starts_with(&mountpoint) || mountpoint.starts_with(&backing) {
        bail!(
            "powerfs: backing {} and mountpoint {} must not contain each other",
            backing.display(),
            mountpoint.display()
        );
    }
    if !backing.is_dir() {
        bail!("powerfs: backing {} is not a directory", backing.display());
    }
    let state = Arc::new(Mutex::new(State::new(backing.clone(), options.unsynced_bytes_max)));
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName("powerfs".into()),
        MountOption::Subtype("powerfs".into()),
        MountOption::DefaultPermissions,
    ];
    let session = fuser::spawn_mount(fs::PowerFs::new(Arc::clone(&state)), &mountpoint, &config)
        .with_context(|| format!("powerfs: mount at {}", mountpoint.display()))?;
    let notifier = session.notifier();
    Ok(Mounted { session: Some(session), notifier, state, backing, mountpoint })
}

/// A mounted powerfs. Dropping it unmounts (and loses what was unsynced).
#[derive(Debug)]
pub struct Mounted {
    session: Option<BackgroundSession>,
    notifier: Notifier,
    state: Arc<Mutex<State>>,
    backing: PathBuf,
    mountpoint: PathBuf,
}

impl Mounted {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// Drops every unsynced write (the power went out). Call after the
    /// processes using the mount were SIGKILLed: one still running would see
    /// its files change under it.
    pub fn lose_unsynced(&self) -> LossReport {
        // The lock is released before talking to the kernel: an invalidation
        // may wait on a request that needs the lock.
        let (report, touched) = fs::lock(&self.state).lose_unsynced();
        for ino in touched {
            // Offset 0, length 0: all cached data and attributes. Fails
            // harmlessly for inodes the kernel has already forgotten.
            let _forgotten = self.notifier.inval_inode(INodeNo(ino), 0, 0);
        }
        report
    }

    /// Fills the disk (`true`) or frees it again.
    pub fn set_disk_full(&self, full: bool) {
        fs::lock(&self.state).disk_full = full;
    }

    pub fn stats(&self) -> Stats {
        fs::lock(&self.state).stats()
    }

    /// Unmounts. Unsynced data is lost, as if the power went out first; the
    /// backing directory then holds exactly what was durable. Fails if a
    /// process still has files open on the mount.
    pub fn unmount(mut self) -> anyhow::Result<()> {
        match self.session.take() {
            Some(session) => session
                .umount_and_join()
                .with_context(|| format!("powerfs: unmount {} (still in use?)", self.mountpoint.display())),
            None => Ok(()),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _already_reported = session.umount_and_join();
        }
    }
}
