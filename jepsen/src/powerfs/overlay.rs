//! The unsynced state of one file: what a reader sees now, held apart from
//! what is on the disk until an fsync applies it.
//!
//! An [`Overlay`] sits over the file's backing copy (the "disk") and records
//! every change made since the last fsync: written byte ranges, and the
//! length, including truncations. Truncation is data, not metadata, here:
//! on a real filesystem a `ftruncate` that was not fsynced may be undone by a
//! power loss too.
//!
//! The overlay knows nothing about FUSE or files; the disk is reached through
//! the [`Disk`] trait, so the logic is tested against a `Vec<u8>` model.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The durable copy of a file, as the overlay needs it.
pub(super) trait Disk {
    /// Fills `buf` from `offset`; bytes past the end of the disk copy read as zeros.
    fn read_at_zero_filled(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
}

/// Changes to one file that are not yet durable.
#[derive(Debug, Clone)]
pub(super) struct Overlay {
    /// The file's length as readers see it.
    len: u64,
    /// Disk bytes at and after this offset are hidden: a truncation cut them
    /// off, so they read as zeros (or as newer written data) even when the
    /// file grows again. Invariant: `cut <= len`.
    cut: u64,
    /// Written ranges by start offset; they never overlap or touch, and all
    /// end at or before `len`.
    extents: BTreeMap<u64, Vec<u8>>,
    /// Sum of the extents' lengths: the memory this overlay holds.
    dirty_bytes: u64,
}

impl Overlay {
    /// An overlay with no changes yet over a disk copy of `disk_len` bytes.
    pub(super) fn new(disk_len: u64) -> Self {
        Self { len: disk_len, cut: disk_len, extents: BTreeMap::new(), dirty_bytes: 0 }
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    pub(super) fn dirty_bytes(&self) -> u64 {
        self.dirty_bytes
    }

    /// Records a write of `data` at `offset`, merging it with the written
    /// ranges it overlaps or touches (an appending log keeps one extent).
    pub(super) fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        // Extents are disjoint and sorted, so their ends are sorted too: walk
        // back from the last extent starting at or before `end` while they
        // still reach `offset`.
        let touching: Vec<u64> = self
            .extents
            .range(..=end)
            .rev()
            .take_while(|(start, bytes)| *start + bytes.len() as u64 >= offset)
            .map(|(start, _)| *start)
            .collect();
        let start = touching.last().map_or(offset, |first| (*first).min(offset));
        let mut merged = match touching.last() {
            Some(first) if *first == start => self.extents.remove(first).unwrap_or_default(),
            _ => Vec::new(),
        };
        for other in touching.iter().filter(|s| **s != start) {
            if let Some(bytes) = self.extents.remove(other) {
                place(&mut merged, (other - start) as usize, &bytes);
            }
        }
        place(&mut merged, (offset - start) as usize, data);
        self.extents.insert(start, merged);
        self.len = self.len.max(end);
        self.recount();
    }

    /// Records a change of length to `len` (shrinking or growing).
    pub(super) fn truncate(&mut self, len: u64) {
        self.len = len;
        self.cut = self.cut.min(len);
        // Extents wholly past the end go; one straddling it is cut short.
        self.extents.retain(|start, _| *start < len);
        if let Some((start, bytes)) = self.extents.range_mut(..len).next_back() {
            let keep = (len - start).min(bytes.len() as u64) as usize;
            bytes.truncate(keep);
        }
        self.recount();
    }

    /// Up to `size` bytes from `offset` as a reader sees them now.
    pub(super) fn read(&self, disk: &impl Disk, offset: u64, size: u32) -> io::Result<Vec<u8>> {
        let end = self.len.min(offset.saturating_add(u64::from(size)));
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; (end - offset) as usize];
        let disk_end = end.min(self.cut);
        if offset < disk_end {
            disk.read_at_zero_filled(&mut buf[..(disk_end - offset) as usize], offset)?;
        }
        // Extents before `offset` may still reach into the range: start from
        // the last one that begins at or before it.
        let first = self.extents.range(..=offset).next_back().map_or(offset, |(start, _)| *start);
        for (start, bytes) in self.extents.range(first..end) {
            let (from, to) = ((*start).max(offset), (start + bytes.len() as u64).min(end));
            if from < to {
                buf[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&bytes[(from - start) as usize..(to - start) as usize]);
            }
        }
        Ok(buf)
    }

    /// Makes the disk copy equal to what readers see: drop what a truncation
    /// cut off, write every range, then set the final length.
    pub(super) fn apply(&self, disk: &mut impl Disk) -> io::Result<()> {
        if disk.len()? > self.cut {
            disk.set_len(self.cut)?;
        }
        for (start, bytes) in &self.extents {
            disk.write_all_at(bytes, *start)?;
        }
        disk.set_len(self.len)
    }

    fn recount(&mut self) {
        self.dirty_bytes = self.extents.values().map(|bytes| bytes.len() as u64).sum();
    }
}

/// Copies `data` into `buf` at `at`, growing `buf` as needed.
fn place(buf: &mut Vec<u8>, at: usize, data: &[u8]) {
    if buf.len() < at + data.len() {
        buf.resize(at + data.len(), 0);
    }
    buf[at..at + data.len()].copy_from_slice(data);
}

impl Disk for File {
    fn read_at_zero_filled(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match FileExt::read_at(self, &mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf[done..].fill(0);
        Ok(())
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}
