//! File attributes as the kernel sees them: the backing file's, with the
//! length an overlay says the file has now.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};

/// Attributes of inode `ino` from the backing file's metadata; `len`
/// overrides the size when the file has unsynced changes.
pub(super) fn from_metadata(ino: u64, meta: &Metadata, len: Option<u64>) -> FileAttr {
    let size = len.unwrap_or(meta.len());
    // An overlay's size is not allocated on disk; count it as if it were,
    // so `du` and friends see what the reader sees.
    let blocks = if len.is_some() { size.div_ceil(512) } else { meta.blocks() };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks,
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        crtime: time(meta.ctime(), meta.ctime_nsec()),
        kind: kind(meta),
        perm: (meta.mode() & 0o7777) as u16,
        nlink: meta.nlink() as u32,
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: meta.rdev() as u32,
        blksize: meta.blksize() as u32,
        flags: 0,
    }
}

pub(super) fn kind(meta: &Metadata) -> FileType {
    FileType::from_std(meta.file_type()).unwrap_or(FileType::RegularFile)
}

fn time(secs: i64, nanos: i64) -> SystemTime {
    let nanos = Duration::from_nanos(nanos.clamp(0, 999_999_999) as u64);
    match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs) + nanos,
        Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nanos,
    }
}
