//! The filesystem's state and its namespace operations (names, directories,
//! attributes). File data lives in `files.rs`.
//!
//! Every operation maps to the backing directory at once: a created file, a
//! rename or an unlink is durable as soon as it returns. Only file data and
//! length wait for an fsync (see [`super::overlay`]).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use fuser::{Errno, FileAttr, FileType};

use super::attr;
use super::inodes::{Inodes, ROOT};
use super::{LossReport, Stats};

pub(super) type Res<T> = Result<T, Errno>;

/// An open file: the backing file, open for as long as the kernel's handle
/// is, so reads still work after the name is unlinked.
#[derive(Debug)]
pub(super) struct Handle {
    pub(super) ino: u64,
    pub(super) file: File,
    /// Whether `file` was opened for writing (fsync can then use it).
    pub(super) writable: bool,
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) backing: PathBuf,
    pub(super) inodes: Inodes,
    pub(super) handles: HashMap<u64, Handle>,
    pub(super) next_fh: u64,
    /// Bytes held in overlays across all files.
    pub(super) unsynced_bytes: u64,
    pub(super) unsynced_bytes_max: u64,
    pub(super) refused_writes: u64,
    /// The disk is full: everything that takes space fails with ENOSPC.
    pub(super) disk_full: bool,
}

impl State {
    pub(super) fn new(backing: PathBuf, unsynced_bytes_max: u64) -> Self {
        Self {
            backing,
            inodes: Inodes::new(),
            handles: HashMap::new(),
            next_fh: 1,
            unsynced_bytes: 0,
            unsynced_bytes_max,
            refused_writes: 0,
            disk_full: false,
        }
    }

    /// ENOSPC (counted) while the disk is full.
    pub(super) fn take_space(&mut self) -> Res<()> {
        if self.disk_full {
            self.refused_writes += 1;
            return Err(Errno::ENOSPC);
        }
        Ok(())
    }

    /// The backing path of a relative path.
    pub(super) fn full(&self, rel: &Path) -> PathBuf {
        self.backing.join(rel)
    }

    /// The relative path of `ino`'s first name.
    pub(super) fn path(&self, ino: u64) -> Res<PathBuf> {
        self.inodes.path(ino).map(Path::to_path_buf).ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: u64, name: &OsStr) -> Res<PathBuf> {
        Ok(self.path(parent)?.join(name))
    }

    /// Attributes of a known inode; an unlinked one is reached through one of
    /// its open handles.
    pub(super) fn attr(&self, ino: u64) -> Res<FileAttr> {
        let meta = match self.inodes.path(ino) {
            Some(rel) => fs::symlink_metadata(self.full(rel))?,
            None => {
                let handle = self.handles.values().find(|h| h.ino == ino).ok_or(Errno::ENOENT)?;
                handle.file.metadata()?
            }
        };
        let len = self.inodes.get(ino).and_then(|node| node.overlay.as_ref()).map(|o| o.len());
        Ok(attr::from_metadata(ino, &meta, len))
    }

    /// Tells the kernel about `rel`: numbers it and counts the lookup.
    fn entry(&mut self, rel: &Path) -> Res<FileAttr> {
        if let Err(e) = fs::symlink_metadata(self.full(rel)) {
            // Someone changed the backing directory behind our back.
            let dropped = self.inodes.unlink(rel);
            self.forget_bytes(dropped);
            return Err(e.into());
        }
        let ino = self.inodes.intern(rel);
        if let Some(node) = self.inodes.get_mut(ino) {
            node.lookups += 1;
        }
        self.attr(ino)
    }

    pub(super) fn lookup(&mut self, parent: u64, name: &OsStr) -> Res<FileAttr> {
        let rel = self.child(parent, name)?;
        self.entry(&rel)
    }

    pub(super) fn forget(&mut self, ino: u64, count: u64) {
        let dropped = self.inodes.forget(ino, count);
        self.forget_bytes(dropped);
    }

    pub(super) fn mkdir(&mut self, parent: u64, name: &OsStr, mode: u32, umask: u32) -> Res<FileAttr> {
        self.take_space()?;
        let rel = self.child(parent, name)?;
        fs::DirBuilder::new().mode(mode & !umask & 0o7777).create(self.full(&rel))?;
        self.entry(&rel)
    }

    /// Creates and opens a file; returns its attributes and a handle.
    pub(super) fn create(&mut self, parent: u64, name: &OsStr, mode: u32, umask: u32) -> Res<(FileAttr, u64)> {
        use std::os::unix::fs::OpenOptionsExt;
        self.take_space()?;
        let rel = self.child(parent, name)?;
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode & !umask & 0o7777)
            .open(self.full(&rel))?;
        let attr = self.entry(&rel)?;
        let fh = self.add_handle(attr.ino.0, file, true);
        Ok((attr, fh))
    }

    pub(super) fn unlink(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        let rel = self.child(parent, name)?;
        fs::remove_file(self.full(&rel))?;
        let dropped = self.inodes.unlink(&rel);
        self.forget_bytes(dropped);
        Ok(())
    }

    pub(super) fn rmdir(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        let rel = self.child(parent, name)?;
        fs::remove_dir(self.full(&rel))?;
        self.inodes.unlink(&rel);
        Ok(())
    }

    pub(super) fn rename(&mut self, parent: u64, name: &OsStr, new_parent: u64, new_name: &OsStr) -> Res<()> {
        let (from, to) = (self.child(parent, name)?, self.child(new_parent, new_name)?);
        fs::rename(self.full(&from), self.full(&to))?;
        // Renaming a name onto another name of the same file changes nothing.
        let same = matches!((self.inodes.ino_of(&from), self.inodes.ino_of(&to)), (Some(a), Some(b)) if a == b);
        if !same {
            let dropped = self.inodes.rename(&from, &to);
            self.forget_bytes(dropped);
        }
        Ok(())
    }

    pub(super) fn link(&mut self, ino: u64, new_parent: u64, new_name: &OsStr) -> Res<FileAttr> {
        self.take_space()?;
        let (from, to) = (self.path(ino)?, self.child(new_parent, new_name)?);
        fs::hard_link(self.full(&from), self.full(&to))?;
        self.inodes.link(ino, &to);
        if let Some(node) = self.inodes.get_mut(ino) {
            node.lookups += 1;
        }
        self.attr(ino)
    }

    /// The entries of a directory, with "." and "..", in a stable order so
    /// that offsets mean the same thing from one call to the next.
    pub(super) fn readdir(&mut self, ino: u64) -> Res<Vec<(u64, FileType, OsString)>> {
        let rel = self.path(ino)?;
        let mut children = Vec::new();
        for entry in fs::read_dir(self.full(&rel))? {
            let entry = entry?;
            let kind = entry.file_type().ok().and_then(FileType::from_std).unwrap_or(FileType::RegularFile);
            children.push((entry.file_name(), kind));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        let parent = rel.parent().and_then(|p| self.inodes.ino_of(p)).unwrap_or(ROOT);
        let mut entries = vec![(ino, FileType::Directory, ".".into()), (parent, FileType::Directory, "..".into())];
        for (name, kind) in children {
            entries.push((self.inodes.intern(&rel.join(&name)), kind, name));
        }
        Ok(entries)
    }

    /// Directory entries are already durable; the fsync still reaches the
    /// disk so that it costs what it would.
    pub(super) fn fsyncdir(&self, ino: u64) -> Res<()> {
        File::open(self.full(&self.path(ino)?))?.sync_all()?;
        Ok(())
    }

    /// Drops every overlay: the power went out. Returns what was lost and the
    /// inodes whose kernel caches must go.
    pub(super) fn lose_unsynced(&mut self) -> (LossReport, Vec<u64>) {
        let mut report = LossReport::default();
        let mut touched = Vec::new();
        for (ino, node) in self.inodes.nodes_mut() {
            if let Some(overlay) = node.overlay.take() {
                report.files += 1;
                report.bytes += overlay.dirty_bytes();
                report.paths.extend(node.paths.first().cloned());
                touched.push(ino);
            }
        }
        report.paths.sort();
        self.unsynced_bytes = 0;
        self.inodes.settle_all();
        (report, touched)
    }

    pub(super) fn stats(&self) -> Stats {
        let overlays = self.inodes.nodes().filter_map(|node| node.overlay.as_ref());
        let (files, bytes) = overlays.fold((0, 0), |(files, bytes), o| (files + 1, bytes + o.dirty_bytes()));
        Stats { unsynced_files: files, unsynced_bytes: bytes, refused_writes: self.refused_writes }
    }

    pub(super) fn forget_bytes(&mut self, dropped: u64) {
        self.unsynced_bytes = self.unsynced_bytes.saturating_sub(dropped);
    }
}
