//! Our inode numbers and the backing paths they stand for.
//!
//! FUSE names files by inode number; the backing directory names them by
//! path. The table keeps both directions, and each inode's unsynced
//! [`Overlay`], which must follow the file through renames and hard links
//! and die with its last name (once no one has it open).
//!
//! Paths are relative to the backing root; the root itself is the empty path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::overlay::Overlay;

pub(super) const ROOT: u64 = 1;

#[derive(Debug, Default)]
pub(super) struct Node {
    /// Every name of the inode (more than one after a hard link); empty once
    /// unlinked while still open.
    pub(super) paths: Vec<PathBuf>,
    /// How many times the kernel has been told about this inode and not yet
    /// forgotten it.
    pub(super) lookups: u64,
    /// Open file handles.
    pub(super) opens: u32,
    /// Unsynced changes, if any.
    pub(super) overlay: Option<Overlay>,
}

#[derive(Debug)]
pub(super) struct Inodes {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<PathBuf, u64>,
    next_ino: u64,
}

impl Inodes {
    pub(super) fn new() -> Self {
        let root = Node { paths: vec![PathBuf::new()], lookups: 1, ..Node::default() };
        Self {
            nodes: HashMap::from([(ROOT, root)]),
            by_path: HashMap::from([(PathBuf::new(), ROOT)]),
            next_ino: ROOT + 1,
        }
    }

    pub(super) fn get(&self, ino: u64) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    pub(super) fn get_mut(&mut self, ino: u64) -> Option<&mut Node> {
        self.nodes.get_mut(&ino)
    }

    pub(super) fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    pub(super) fn nodes_mut(&mut self) -> impl Iterator<Item = (u64, &mut Node)> {
        self.nodes.iter_mut().map(|(ino, node)| (*ino, node))
    }

    /// The inode's first name, or `None` if it has none left (or is unknown).
    pub(super) fn path(&self, ino: u64) -> Option<&Path> {
        self.nodes.get(&ino).and_then(|node| node.paths.first()).map(PathBuf::as_path)
    }

    pub(super) fn ino_of(&self, path: &Path) -> Option<u64> {
        self.by_path.get(path).copied()
    }

    /// The inode for `path`, numbering it if it is new.
    pub(super) fn intern(&mut self, path: &Path) -> u64 {
        if let Some(ino) = self.by_path.get(path) {
            return *ino;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, Node { paths: vec![path.to_path_buf()], ..Node::default() });
        self.by_path.insert(path.to_path_buf(), ino);
        ino
    }

    /// Adds `path` as another name of `ino` (a hard link).
    pub(super) fn link(&mut self, ino: u64, path: &Path) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.paths.push(path.to_path_buf());
            self.by_path.insert(path.to_path_buf(), ino);
        }
    }

    /// Removes the name `path`; returns the unsynced bytes this dropped.
    pub(super) fn unlink(&mut self, path: &Path) -> u64 {
        let Some(ino) = self.by_path.remove(path) else { return 0 };
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.paths.retain(|p| p != path);
        }
        self.settle(ino)
    }

    /// Renames `from` to `to` (and everything under `from` if it is a
    /// directory), replacing whatever `to` named; returns the unsynced bytes
    /// dropped with the replaced file.
    pub(super) fn rename(&mut self, from: &Path, to: &Path) -> u64 {
        if from == to {
            return 0;
        }
        let dropped = self.unlink(to);
        let mut moved = Vec::new();
        for (ino, node) in &mut self.nodes {
            for path in &mut node.paths {
                if let Ok(rest) = path.strip_prefix(from) {
                    let new = if rest.as_os_str().is_empty() { to.to_path_buf() } else { to.join(rest) };
                    moved.push((std::mem::replace(path, new.clone()), new, *ino));
                }
            }
        }
        for (old, _, _) in &moved {
            self.by_path.remove(old);
        }
        for (_, new, ino) in moved {
            self.by_path.insert(new, ino);
        }
        dropped
    }

    /// The kernel forgot `count` lookups of `ino`.
    pub(super) fn forget(&mut self, ino: u64, count: u64) -> u64 {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(count);
        }
        self.settle(ino)
    }

    /// Drops what no one can reach any more: the overlay of a file with no
    /// name and no open handle, and the inode itself once the kernel has
    /// forgotten it and it holds nothing unsynced. Returns the unsynced
    /// bytes dropped.
    pub(super) fn settle(&mut self, ino: u64) -> u64 {
        let Some(node) = self.nodes.get_mut(&ino) else { return 0 };
        let mut dropped = 0;
        if node.paths.is_empty() && node.opens == 0 {
            dropped = node.overlay.take().map_or(0, |overlay| overlay.dirty_bytes());
        }
        let unused = node.lookups == 0 && node.opens == 0 && node.overlay.is_none();
        if ino != ROOT && unused {
            for path in &node.paths {
                self.by_path.remove(path);
            }
            self.nodes.remove(&ino);
        }
        dropped
    }

    /// Runs [`Self::settle`] over every inode (after a power loss emptied
    /// the overlays).
    pub(super) fn settle_all(&mut self) {
        let inos: Vec<u64> = self.nodes.keys().copied().collect();
        for ino in inos {
            self.settle(ino);
        }
    }
}
