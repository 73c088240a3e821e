//! Small files written durably: the data directory's pointers and ids, a
//! snapshot's metadata, a backup's manifest.

use std::fs;
use std::path::Path;

use super::StorageError;

/// Writes a file and fsyncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    use std::io::Write;
    let context = || format!("write {}", path.display());
    let mut file = fs::File::create(path).map_err(|e| StorageError::io(context())(e))?;
    file.write_all(bytes).map_err(|e| StorageError::io(context())(e))?;
    file.sync_all().map_err(|e| StorageError::io(context())(e))
}

/// Fsyncs a directory, making renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io(format!("fsync directory {}", dir.display())))
}

/// Makes `dir/name` hold `bytes`, durably and whole: a crash leaves the old
/// file or the new one, never a part (written beside it, then renamed).
pub fn replace_synced(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let (partial, path) = (dir.join(format!("{name}.tmp")), dir.join(name));
    write_synced(&partial, bytes)?;
    fs::rename(&partial, &path).map_err(StorageError::io(format!("rename {}", partial.display())))?;
    sync_dir(dir)
}
