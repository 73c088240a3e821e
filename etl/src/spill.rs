//! External sorting for the close of an hour: records are sorted in memory
//! up to a budget, spilled as sorted runs to a scratch directory, and merged
//! back in order. Memory stays near the budget plus one read buffer per
//! merged run (at most [`FAN_IN`]) however many events the hour holds; runs
//! past the fan-in are merged into longer runs first.
//!
//! Runs are scratch: not fsynced, deleted with the sorter. A crashed close
//! starts again from the staging files, which are the durable copy.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempfile::TempDir;

/// Runs merged at once, at most.
pub const FAN_IN: usize = 64;
/// Each run's read buffer while merging, and each run's write buffer.
const BUFFER_BYTES: usize = 64 << 10;
/// A spilled record is at most this long (an event is at most 10 MiB).
const RECORD_BYTES_MAX: usize = 64 << 20;

/// What can be sorted externally: ordered, written and read back as bytes.
/// Records that compare equal must be identical, so the merged order (and
/// what is written from it) never depends on which run a record was in.
pub trait Record: Ord + Sized + Send + 'static {
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> io::Result<Self>;
    /// Roughly the memory it holds, to keep the buffer within the budget.
    fn footprint(&self) -> usize;
}

/// Takes records in any order; [`Sorter::finish`] gives them back sorted.
pub struct Sorter<T: Record> {
    dir: Arc<TempDir>,
    budget: usize,
    buffer: Vec<T>,
    held: usize,
    runs: Vec<PathBuf>,
    next_run: usize,
}

impl<T: Record> Sorter<T> {
    /// A sorter spilling under `scratch` once it holds `budget` bytes.
    pub fn new(scratch: &Path, budget: usize) -> io::Result<Self> {
        std::fs::create_dir_all(scratch)?;
        let dir = tempfile::Builder::new().prefix("ferry-etl-close-").tempdir_in(scratch)?;
        Ok(Self { dir: Arc::new(dir), budget, buffer: Vec::new(), held: 0, runs: Vec::new(), next_run: 0 })
    }

    pub fn push(&mut self, record: T) -> io::Result<()> {
        self.held += record.footprint();
        self.buffer.push(record);
        if self.held >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// How many runs were spilled (0: it all fit in memory).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Every record pushed, in order.
    pub fn finish(mut self) -> io::Result<Sorted<T>> {
        if self.runs.is_empty() {
            self.buffer.sort_unstable();
            let records = std::mem::take(&mut self.buffer).into_iter();
            return Ok(Sorted { source: Source::Memory(records), _dir: self.dir });
        }
        self.spill()?;
        while self.runs.len() > FAN_IN {
            let group: Vec<PathBuf> = self.runs.drain(..FAN_IN).collect();
            let path = self.run_path();
            let mut writer = RunWriter::create(&path)?;
            for record in Merge::<T>::open(&group)? {
                writer.write(&record?)?;
            }
            writer.finish()?;
            for run in group {
                std::fs::remove_file(run)?;
            }
            self.runs.push(path);
        }
        Ok(Sorted { source: Source::Runs(Merge::open(&self.runs)?), _dir: self.dir })
    }

    fn spill(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.buffer.sort_unstable();
        let path = self.run_path();
        let mut writer = RunWriter::create(&path)?;
        for record in self.buffer.drain(..) {
            writer.write(&record)?;
        }
        writer.finish()?;
        self.held = 0;
        self.runs.push(path);
        Ok(())
    }

    fn run_path(&mut self) -> PathBuf {
        self.next_run += 1;
        self.dir.path().join(format!("run-{:06}", self.next_run))
    }
}

/// The sorted records; the scratch directory goes when this does.
pub struct Sorted<T: Record> {
    source: Source<T>,
    _dir: Arc<TempDir>,
}

enum Source<T: Record> {
    Memory(std::vec::IntoIter<T>),
    Runs(Merge<T>),
}

impl<T: Record> Iterator for Sorted<T> {
    type Item = io::Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.source {
            Source::Memory(records) => records.next().map(Ok),
            Source::Runs(merge) => merge.next(),
        }
    }
}

/// A k-way merge of sorted runs.
struct Merge<T: Record> {
    readers: Vec<RunReader>,
    /// Each run's next record, smallest first; the index breaks no ties
    /// that matter, as equal records are identical.
    heads: BinaryHeap<Reverse<(T, usize)>>,
    failed: bool,
}

impl<T: Record> Merge<T> {
    fn open(runs: &[PathBuf]) -> io::Result<Self> {
        let mut readers = Vec::with_capacity(runs.len());
        let mut heads = BinaryHeap::with_capacity(runs.len());
        for (index, path) in runs.iter().enumerate() {
            let mut reader = RunReader::open(path)?;
            if let Some(record) = reader.next()? {
                heads.push(Reverse((record, index)));
            }
            readers.push(reader);
        }
        Ok(Self { readers, heads, failed: false })
    }
}

impl<T: Record> Iterator for Merge<T> {
    type Item = io::Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let Reverse((record, index)) = self.heads.pop()?;
        match self.readers[index].next() {
            Ok(Some(next)) => self.heads.push(Reverse((next, index))),
            Ok(None) => {}
            Err(error) => {
                self.failed = true;
                return Some(Err(error));
            }
        }
        Some(Ok(record))
    }
}

/// Records as `u32` length (little-endian) then bytes.
struct RunWriter {
    file: BufWriter<File>,
    scratch: Vec<u8>,
}

impl RunWriter {
    fn create(path: &Path) -> io::Result<Self> {
        Ok(Self { file: BufWriter::with_capacity(BUFFER_BYTES, File::create(path)?), scratch: Vec::new() })
    }

    fn write<T: Record>(&mut self, record: &T) -> io::Result<()> {
        self.scratch.clear();
        record.encode(&mut self.scratch);
        let len = u32::try_from(self.scratch.len()).map_err(|_| invalid("a record over 4 GiB"))?;
        self.file.write_all(&len.to_le_bytes())?;
        self.file.write_all(&self.scratch)
    }

    fn finish(mut self) -> io::Result<()> {
        self.file.flush()
    }
}

struct RunReader {
    file: BufReader<File>,
    scratch: Vec<u8>,
}

impl RunReader {
    fn open(path: &Path) -> io::Result<Self> {
        Ok(Self { file: BufReader::with_capacity(BUFFER_BYTES, File::open(path)?), scratch: Vec::new() })
    }

    fn next<T: Record>(&mut self) -> io::Result<Option<T>> {
        let mut len = [0; 4];
        match self.file.read_exact(&mut len) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(error) => return Err(error),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > RECORD_BYTES_MAX {
            return Err(invalid("a spilled record longer than any the close writes"));
        }
        self.scratch.resize(len, 0);
        self.file.read_exact(&mut self.scratch)?;
        T::decode(&self.scratch).map(Some)
    }
}

fn invalid(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    struct Number(u64);

    impl Record for Number {
        fn encode(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.0.to_be_bytes());
        }
        fn decode(bytes: &[u8]) -> io::Result<Self> {
            Ok(Self(u64::from_be_bytes(bytes.try_into().map_err(|_| invalid("not 8 bytes"))?)))
        }
        fn footprint(&self) -> usize {
            8
        }
    }

    fn shuffled(count: u64) -> Vec<Number> {
        (0..count).map(|i| Number(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 1_000)).collect()
    }

    fn sorted(budget: usize, records: Vec<Number>) -> (Vec<Number>, usize) {
        let scratch = tempfile::tempdir().expect("scratch");
        let mut sorter = Sorter::new(scratch.path(), budget).expect("sorter");
        for record in records {
            sorter.push(record).expect("push");
        }
        let runs = sorter.runs();
        let out = sorter.finish().expect("finish").collect::<io::Result<Vec<_>>>().expect("read back");
        (out, runs)
    }

    #[test]
    fn what_fits_the_budget_is_sorted_in_memory() {
        let (out, runs) = sorted(1 << 20, shuffled(500));
        assert_eq!(runs, 0);
        let mut want = shuffled(500);
        want.sort();
        assert_eq!(out, want);
    }

    #[test]
    fn spilled_runs_past_the_fan_in_merge_to_the_same_order() {
        // 8 records a run: 5,000 records make 625 runs, three merge levels.
        let (out, runs) = sorted(64, shuffled(5_000));
        assert!(runs > FAN_IN * FAN_IN / 8, "{runs} runs");
        let mut want = shuffled(5_000);
        want.sort();
        assert_eq!(out, want, "every record once, in order, duplicates kept");
    }

    #[test]
    fn the_scratch_directory_goes_with_the_sorted_records() {
        let scratch = tempfile::tempdir().expect("scratch");
        let mut sorter = Sorter::new(scratch.path(), 8).expect("sorter");
        for record in shuffled(100) {
            sorter.push(record).expect("push");
        }
        let sorted = sorter.finish().expect("finish");
        assert_eq!(std::fs::read_dir(scratch.path()).expect("list").count(), 1);
        drop(sorted);
        assert_eq!(std::fs::read_dir(scratch.path()).expect("list").count(), 0);
    }
}
