//! Where `ferry tail` is in each file, saved only for lines the cluster
//! acknowledged, so a restart resumes there: no line lost, and at most the
//! unacknowledged window sent twice.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// A place in one file: which file (device and inode, so a rotated file is
/// recognised under its new name) and the byte after the last line published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    pub dev: u64,
    pub inode: u64,
    pub offset: u64,
}

/// The checkpoint file: one position per followed path.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Checkpoints {
    pub files: BTreeMap<PathBuf, FilePosition>,
}

impl Checkpoints {
    /// Reads the checkpoint file; a missing file is an empty checkpoint.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("parse checkpoint {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("read checkpoint {}", path.display())),
        }
    }

    /// Replaces the checkpoint file atomically and durably: a crash leaves
    /// the old checkpoint or the new one, never a torn one.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let temporary = path.with_extension("tmp");
        let mut file = std::fs::File::create(&temporary).with_context(|| format!("create {}", temporary.display()))?;
        file.write_all(&serde_json::to_vec_pretty(self)?)?;
        file.sync_all().with_context(|| format!("fsync {}", temporary.display()))?;
        std::fs::rename(&temporary, path).with_context(|| format!("rename to {}", path.display()))?;
        std::fs::File::open(dir)?.sync_all().with_context(|| format!("fsync {}", dir.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_checkpoint_loads_back_and_a_missing_one_is_empty() {
        let dir = std::env::temp_dir().join(format!("ferry-checkpoint-test-{}", std::process::id()));
        let path = dir.join("tail.json");
        assert!(Checkpoints::load(&path).expect("load").files.is_empty());
        let mut checkpoints = Checkpoints::default();
        checkpoints.files.insert("/var/log/app.log".into(), FilePosition { dev: 1, inode: 2, offset: 3 });
        checkpoints.save(&path).expect("save");
        assert_eq!(Checkpoints::load(&path).expect("load").files, checkpoints.files);
        std::fs::remove_dir_all(dir).expect("clean up");
    }
}
