//! `Follower`: reads one path like `tail -F` — new complete lines as they are
//! appended, on into the new file when the path is rotated (renamed and
//! recreated), and from the start again when the file is truncated.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::checkpoint::FilePosition;

/// Bytes read from a file per poll, at most: memory stays bounded however
/// far behind the tailer is.
const READ_CHUNK_BYTES: usize = 1024 * 1024;
/// A line longer than this is published in pieces of this size.
pub const LINE_BYTES_MAX: usize = 1024 * 1024;

/// One line (without its newline) and the position just after it.
#[derive(Debug)]
pub struct Line {
    pub data: Vec<u8>,
    pub end: FilePosition,
}

#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    /// The file being read: the one at `path`, or the one that was rotated
    /// away from it while lines remained unread.
    file: Option<File>,
    dev: u64,
    inode: u64,
    /// Where the next read starts.
    offset: u64,
    /// The start of a line whose newline has not been written yet.
    partial: Vec<u8>,
}

fn identity(metadata: &std::fs::Metadata) -> (u64, u64) {
    (metadata.dev(), metadata.ino())
}

impl Follower {
    /// Starts following `path` from a checkpoint. If the checkpointed file was
    /// rotated away, it is looked up by inode in the same directory and
    /// finished first; if it is gone, reading starts at the beginning of `path`.
    pub fn resume(path: &Path, from: Option<FilePosition>) -> Self {
        let mut follower =
            Follower { path: path.to_owned(), file: None, dev: 0, inode: 0, offset: 0, partial: Vec::new() };
        let Some(from) = from else { return follower };
        let current = std::fs::metadata(path).ok().map(|m| identity(&m));
        let file = if current == Some((from.dev, from.inode)) {
            File::open(path).ok()
        } else {
            Self::find_rotated(path, from)
        };
        if let Some(file) = file {
            follower.file = Some(file);
            (follower.dev, follower.inode, follower.offset) = (from.dev, from.inode, from.offset);
        } else {
            tracing::warn!(path = %path.display(), "the checkpointed file is gone; starting at the beginning");
        }
        follower
    }

    /// A file in `path`'s directory with the checkpoint's device and inode.
    fn find_rotated(path: &Path, from: FilePosition) -> Option<File> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
            let metadata = entry.metadata().ok()?;
            (identity(&metadata) == (from.dev, from.inode)).then(|| File::open(entry.path()).ok()).flatten()
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The complete lines appended since the last poll (up to a chunk).
    pub fn poll(&mut self) -> std::io::Result<Vec<Line>> {
        if self.file.is_none() && !self.open_path()? {
            return Ok(Vec::new());
        }
        let lines = self.read_chunk()?;
        if !lines.is_empty() {
            return Ok(lines);
        }
        // At the end of the file: has the path moved on to another file, or
        // was this one cut short?
        let at_path = match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut lines = Vec::new();
        if identity(&at_path) != (self.dev, self.inode) {
            // Rotated: the old file is finished; its unterminated last line
            // will never be completed, so it goes as it is.
            if !self.partial.is_empty() {
                let data = std::mem::take(&mut self.partial);
                lines.push(self.line(data));
            }
            self.file = None;
            self.open_path()?;
        } else if at_path.len() < self.offset {
            tracing::info!(path = %self.path.display(), "file truncated; reading it from the start");
            self.offset = 0;
            self.partial.clear();
        }
        Ok(lines)
    }

    /// Opens the file now at `path`, from its start. False if there is none.
    fn open_path(&mut self) -> std::io::Result<bool> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        (self.dev, self.inode) = identity(&file.metadata()?);
        self.offset = 0;
        self.partial.clear();
        self.file = Some(file);
        Ok(true)
    }

    fn read_chunk(&mut self) -> std::io::Result<Vec<Line>> {
        let Some(file) = self.file.as_mut() else { return Ok(Vec::new()) };
        let len = file.metadata()?.len();
        if len < self.offset {
            return Ok(Vec::new());
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut chunk = Vec::with_capacity(READ_CHUNK_BYTES.min((len - self.offset) as usize));
        file.take(READ_CHUNK_BYTES as u64).read_to_end(&mut chunk)?;
        // Positions count from the start of the pending partial line.
        let mut line_start = self.offset - self.partial.len() as u64;
        self.offset += chunk.len() as u64;
        let mut lines = Vec::new();
        let mut rest = chunk.as_slice();
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let mut data = std::mem::take(&mut self.partial);
            data.extend_from_slice(&rest[..newline]);
            line_start += data.len() as u64 + 1;
            lines.push(Line { data, end: self.position(line_start) });
            rest = &rest[newline + 1..];
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() >= LINE_BYTES_MAX {
            let data = std::mem::take(&mut self.partial);
            line_start += data.len() as u64;
            lines.push(Line { data, end: self.position(line_start) });
        }
        Ok(lines)
    }

    fn position(&self, offset: u64) -> FilePosition {
        FilePosition { dev: self.dev, inode: self.inode, offset }
    }

    /// The pending partial line, ended where the file ends now.
    fn line(&self, data: Vec<u8>) -> Line {
        Line { data, end: self.position(self.offset) }
    }
}
