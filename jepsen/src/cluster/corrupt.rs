//! Disk faults on a stopped node: bits flipped in one of its data files, as
//! a failing disk or a bad sector would leave them.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// Files RocksDB cannot open at all when damaged; flipping bits there tests
/// nothing but "the node does not start", so they are left alone.
const SPARED: &[&str] = &["CURRENT", "IDENTITY", "LOCK", "LOG", "OPTIONS"];

/// The raft log's obsolete WAL files, waiting to be trimmed: nothing reads
/// them, so damage there tests nothing.
const SPARED_DIRS: &[&str] = &["archive"];

/// Bytes inverted per corruption.
const FLIPPED_BYTES: usize = 8;

/// Inverts a few bytes in the middle of a random data file under `dir` and
/// says which and where.
pub fn flip_bytes(dir: &Path, rng: &mut StdRng) -> anyhow::Result<String> {
    let mut candidates = Vec::new();
    collect(dir, &mut candidates)?;
    let Some((path, size)) = candidates.choose(rng).cloned() else {
        anyhow::bail!("no data file of 4 KiB or more under {}", dir.display());
    };
    let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
    let mut offsets = Vec::with_capacity(FLIPPED_BYTES);
    for _ in 0..FLIPPED_BYTES {
        let offset = rng.gen_range(size / 4..size * 3 / 4);
        let mut byte = [0u8];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut byte)?;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(&[!byte[0]])?;
        offsets.push(offset);
    }
    file.sync_all()?;
    let shown = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
    Ok(format!("inverted {FLIPPED_BYTES} bytes of {shown} ({size} bytes) at {offsets:?}"))
}

fn collect(dir: &Path, out: &mut Vec<(PathBuf, u64)>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let metadata = entry.metadata()?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if metadata.is_dir() {
            if !SPARED_DIRS.contains(&name.as_str()) {
                collect(&path, out)?;
            }
        } else if metadata.len() >= 4096 && !SPARED.iter().any(|s| name.starts_with(s)) && !name.starts_with("MANIFEST")
        {
            out.push((path, metadata.len()));
        }
    }
    Ok(())
}
