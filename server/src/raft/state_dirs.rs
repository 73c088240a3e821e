//! Which `state-N/` directory holds the live state database.
//!
//! Installing a snapshot builds a new state database beside the old one and
//! then switches the `STATE` pointer file (write, fsync, rename, fsync dir), so
//! a crash at any point leaves one complete state to start from.

use std::fs;
use std::path::{Path, PathBuf};

use crate::storage::files::replace_synced;
use crate::storage::StorageError;

const POINTER_FILE: &str = "STATE";
const PREFIX: &str = "state-";

#[derive(Debug)]
pub struct StateDirs {
    data_dir: PathBuf,
}

impl StateDirs {
    pub fn new(data_dir: &Path) -> Self {
        Self { data_dir: data_dir.to_owned() }
    }

    /// The live state directory (`state-0` on a new node).
    pub fn live(&self) -> Result<PathBuf, StorageError> {
        let pointer = self.data_dir.join(POINTER_FILE);
        match fs::read_to_string(&pointer) {
            Ok(name) => Ok(self.data_dir.join(name.trim())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(self.data_dir.join(format!("{PREFIX}0"))),
            Err(e) => Err(StorageError::io(format!("read {}", pointer.display()))(e)),
        }
    }

    /// A new, empty directory name for the next state database.
    pub fn next(&self) -> Result<PathBuf, StorageError> {
        let live = self.live()?;
        let number = |p: &Path| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|n| n.parse::<u64>().ok())
        };
        let mut next = number(&live).unwrap_or(0) + 1;
        while self.data_dir.join(format!("{PREFIX}{next}")).exists() {
            next += 1;
        }
        Ok(self.data_dir.join(format!("{PREFIX}{next}")))
    }

    /// Points `STATE` at `dir`, durably.
    pub fn switch_to(&self, dir: &Path) -> Result<(), StorageError> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| StorageError::Invalid(format!("state directory {} has no name", dir.display())))?;
        replace_synced(&self.data_dir, POINTER_FILE, name.as_bytes())
    }

    /// Removes every state directory but the live one.
    pub fn remove_stale(&self) -> Result<(), StorageError> {
        let live = self.live()?;
        let entries =
            fs::read_dir(&self.data_dir).map_err(StorageError::io(format!("list {}", self.data_dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path != live && entry.file_name().to_string_lossy().starts_with(PREFIX) && path.is_dir() {
                fs::remove_dir_all(&path).map_err(StorageError::io(format!("remove {}", path.display())))?;
            }
        }
        Ok(())
    }
}
