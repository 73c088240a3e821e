//! File data: open handles, reads and writes through the overlay, fsync (the
//! only thing that makes data durable), truncation and other attribute
//! changes.

use std::fs::{File, FileTimes, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::time::SystemTime;

use fuser::{Errno, FileAttr, TimeOrNow};

use super::overlay::Overlay;
use super::state::{Handle, Res, State};

/// The attribute changes of one `setattr` request.
#[derive(Debug, Default)]
pub(super) struct AttrChange {
    pub(super) mode: Option<u32>,
    pub(super) uid: Option<u32>,
    pub(super) gid: Option<u32>,
    pub(super) size: Option<u64>,
    pub(super) atime: Option<TimeOrNow>,
    pub(super) mtime: Option<TimeOrNow>,
}

impl State {
    pub(super) fn open(&mut self, ino: u64) -> Res<u64> {
        let full = self.full(&self.path(ino)?);
        // Open for writing whatever the caller asked for, so fsync through any
        // handle can write the overlay out; the kernel enforces the caller's
        // access mode itself.
        let (file, writable) = match OpenOptions::new().read(true).write(true).open(&full) {
            Ok(file) => (file, true),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => (File::open(&full)?, false),
            Err(e) => return Err(e.into()),
        };
        Ok(self.add_handle(ino, file, writable))
    }

    pub(super) fn add_handle(&mut self, ino: u64, file: File, writable: bool) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        if let Some(node) = self.inodes.get_mut(ino) {
            node.opens += 1;
        }
        self.handles.insert(fh, Handle { ino, file, writable });
        fh
    }

    pub(super) fn release(&mut self, fh: u64) {
        let Some(handle) = self.handles.remove(&fh) else { return };
        if let Some(node) = self.inodes.get_mut(handle.ino) {
            node.opens = node.opens.saturating_sub(1);
        }
        let dropped = self.inodes.settle(handle.ino);
        self.forget_bytes(dropped);
    }

    pub(super) fn read(&self, ino: u64, fh: u64, offset: u64, size: u32) -> Res<Vec<u8>> {
        let handle = self.handles.get(&fh).ok_or(Errno::EBADF)?;
        let bytes = match self.inodes.get(ino).and_then(|node| node.overlay.as_ref()) {
            Some(overlay) => overlay.read(&handle.file, offset, size)?,
            // No unsynced changes: the disk copy is the file.
            None => Overlay::new(handle.file.metadata()?.len()).read(&handle.file, offset, size)?,
        };
        Ok(bytes)
    }

    /// Keeps the write in memory. Refused with ENOSPC if it could take the
    /// unsynced bytes over the limit: flushing instead would make data
    /// durable that the program never synced, and hide the very bugs we
    /// look for.
    pub(super) fn write(&mut self, ino: u64, fh: u64, offset: u64, data: &[u8]) -> Res<u32> {
        self.take_space()?;
        if self.unsynced_bytes + data.len() as u64 > self.unsynced_bytes_max {
            self.refused_writes += 1;
            return Err(Errno::ENOSPC);
        }
        self.change_overlay(ino, Some(fh), |overlay| overlay.write(offset, data))?;
        Ok(data.len() as u32)
    }

    /// Writes the overlay to the disk copy and syncs it.
    pub(super) fn fsync(&mut self, ino: u64, fh: u64, datasync: bool) -> Res<()> {
        let node = self.inodes.get_mut(ino).ok_or(Errno::ENOENT)?;
        if node.paths.is_empty() {
            // An unlinked file's data can never survive a power loss; keep
            // serving it from memory to whoever still has it open.
            return Ok(());
        }
        let overlay = node.overlay.take();
        let result = self.write_out(ino, fh, overlay.as_ref(), datasync);
        match (result, overlay) {
            (Ok(()), overlay) => {
                self.forget_bytes(overlay.map_or(0, |o| o.dirty_bytes()));
                Ok(())
            }
            (Err(e), overlay) => {
                // Nothing was acknowledged as durable; the changes stay unsynced.
                if let Some(node) = self.inodes.get_mut(ino) {
                    node.overlay = overlay;
                }
                Err(e.into())
            }
        }
    }

    fn write_out(&self, ino: u64, fh: u64, overlay: Option<&Overlay>, datasync: bool) -> io::Result<()> {
        // Any handle can sync; only one open for writing can write the overlay.
        let mut file = match self.handles.get(&fh) {
            Some(handle) if handle.ino == ino && (handle.writable || overlay.is_none()) => handle.file.try_clone()?,
            _ => OpenOptions::new()
                .write(true)
                .open(self.full(&self.path(ino).map_err(|e| io::Error::from_raw_os_error(e.code()))?))?,
        };
        if let Some(overlay) = overlay {
            overlay.apply(&mut file)?;
        }
        if datasync {
            file.sync_data()
        } else {
            file.sync_all()
        }
    }

    pub(super) fn setattr(&mut self, ino: u64, fh: Option<u64>, change: AttrChange) -> Res<FileAttr> {
        if let Some(size) = change.size {
            self.change_overlay(ino, fh, |overlay| overlay.truncate(size))?;
        }
        let ownership = change.uid.is_some() || change.gid.is_some();
        if change.mode.is_some() || ownership || change.atime.is_some() || change.mtime.is_some() {
            let file = self.metadata_file(ino, fh)?;
            if let Some(mode) = change.mode {
                file.set_permissions(Permissions::from_mode(mode & 0o7777))?;
            }
            if ownership {
                std::os::unix::fs::fchown(&file, change.uid, change.gid)?;
            }
            let mut times = FileTimes::new();
            if let Some(atime) = change.atime {
                times = times.set_accessed(system_time(atime));
            }
            if let Some(mtime) = change.mtime {
                times = times.set_modified(system_time(mtime));
            }
            file.set_times(times)?;
        }
        self.attr(ino)
    }

    /// Applies `change` to `ino`'s overlay (starting one if it has none) and
    /// keeps the unsynced byte count right.
    fn change_overlay(&mut self, ino: u64, fh: Option<u64>, change: impl FnOnce(&mut Overlay)) -> Res<()> {
        let has_overlay = self.inodes.get(ino).ok_or(Errno::ENOENT)?.overlay.is_some();
        let disk_len = if has_overlay { 0 } else { self.disk_len(ino, fh)? };
        let node = self.inodes.get_mut(ino).ok_or(Errno::ENOENT)?;
        let overlay = node.overlay.get_or_insert_with(|| Overlay::new(disk_len));
        let before = overlay.dirty_bytes();
        change(overlay);
        let after = overlay.dirty_bytes();
        self.unsynced_bytes = self.unsynced_bytes.saturating_sub(before) + after;
        Ok(())
    }

    /// The length of `ino`'s disk copy.
    fn disk_len(&self, ino: u64, fh: Option<u64>) -> Res<u64> {
        Ok(self.metadata_file(ino, fh)?.metadata()?.len())
    }

    /// A file open on `ino`'s backing copy, for reading its metadata or
    /// changing its attributes: the caller's handle, the file's name, or
    /// (once unlinked) any handle still open on it.
    fn metadata_file(&self, ino: u64, fh: Option<u64>) -> Res<File> {
        let handle = fh.and_then(|fh| self.handles.get(&fh)).filter(|h| h.ino == ino);
        if let Some(handle) = handle {
            return Ok(handle.file.try_clone()?);
        }
        if let Some(rel) = self.inodes.path(ino) {
            return Ok(File::open(self.full(rel))?);
        }
        let handle = self.handles.values().find(|h| h.ino == ino).ok_or(Errno::ENOENT)?;
        Ok(handle.file.try_clone()?)
    }
}

fn system_time(time: TimeOrNow) -> SystemTime {
    match time {
        TimeOrNow::SpecificTime(time) => time,
        TimeOrNow::Now => SystemTime::now(),
    }
}
