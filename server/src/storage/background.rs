//! RocksDB's background threads (flushes and compactions) run at a lower
//! CPU priority than the threads that serve requests.
//!
//! Why: a flush is a burst of CPU (tens to hundreds of milliseconds of
//! compressing and building a table) that nothing waits on, except a writer
//! once every memtable is full. On a node with few cores it took the cores
//! from the publishes and acks queued behind it, and set the tail of their
//! latency. Measured on the 2-core VM, 3 nodes at 170,000 msgs/s of 128 B
//! (half their best): publish p99 10–31 ms as it was, 8–9 ms with the
//! threads 10 nice levels down, four runs each; in a noisier hour, medians
//! of seven runs 42 against 15 ms. The full rate was not lower (405k against
//! 404k–429k msgs/s on 3 nodes, 786k against 790k on one).
//!
//! 10 levels, not RocksDB's own `LowerThreadPoolCPUPriority` (nice 19): at
//! 19 a busy node starved its flushes until every memtable was full and
//! writes stopped (a p999 of 258 ms in one run of four). 10 levels down, a
//! background thread still gets about a tenth of a core against a busy
//! request thread, which keeps flushing well ahead of the memtable budget.
//!
//! Linux only, and where RocksDB names its threads (glibc); elsewhere they
//! keep the process's priority.

use std::fs;

/// How many nice levels RocksDB's background threads sit below the process.
const BACKGROUND_NICE_LEVELS: i32 = 10;
/// The lowest priority there is.
const NICE_MAX: i32 = 19;

/// RocksDB names its pool threads `rocksdb:low`, `rocksdb:high` and
/// `rocksdb:bottom`.
const THREAD_NAME_PREFIX: &str = "rocksdb:";

/// The nice value RocksDB's background threads get: the calling thread's
/// (the process's: no other thread is changed) plus
/// [`BACKGROUND_NICE_LEVELS`]. Relative, so a node an operator started at
/// nice 15 is not asked to raise them (which takes privileges), and one at
/// -10 does not put them 20 levels down.
fn background_nice() -> i32 {
    let own = rustix::process::getpriority_process(None).unwrap_or(0);
    (own + BACKGROUND_NICE_LEVELS).min(NICE_MAX)
}

/// Lowers the priority of every RocksDB background thread of this process.
/// The pools are shared by every database and grow when one opens, so this
/// runs after each open; a thread already lowered is set to the same value.
/// Best effort: without `/proc` the threads keep their priority.
pub fn lower_priority() {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else { return };
    let nice = background_nice();
    for task in tasks.flatten() {
        let is_background = fs::read_to_string(task.path().join("comm"))
            .is_ok_and(|name| name.trim_end().starts_with(THREAD_NAME_PREFIX));
        let Some(tid) = task.file_name().to_str().and_then(|tid| tid.parse::<i32>().ok()) else { continue };
        if !is_background {
            continue;
        }
        // On Linux `setpriority(PRIO_PROCESS, tid)` sets one thread's nice value.
        let result = rustix::process::Pid::from_raw(tid)
            .ok_or(rustix::io::Errno::INVAL)
            .and_then(|pid| rustix::process::setpriority_process(Some(pid), nice));
        if let Err(error) = result {
            tracing::warn!(tid, %error, "could not lower a RocksDB background thread's priority");
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::storage::db::{open_state_db, DbResources};

    /// The nice value of thread `tid` (field 19 of its stat line, counted
    /// after the parenthesised name, which may hold spaces), if it still runs.
    fn nice(tid: &str) -> Option<i32> {
        let stat = fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        let after_name = &stat[stat.rfind(')')? + 2..];
        after_name.split(' ').nth(16)?.parse().ok()
    }

    #[test]
    fn an_opened_database_leaves_its_background_threads_niced_and_the_process_as_it_was() {
        let own = rustix::process::getpriority_process(None).expect("own nice");
        let dir = tempfile::tempdir().expect("temp dir");
        let _db = open_state_db(dir.path(), &DbResources::default()).expect("open");
        let mut background = 0;
        for task in fs::read_dir("/proc/self/task").expect("tasks").flatten() {
            let tid = task.file_name().into_string().expect("tid");
            // Other tests' threads come and go meanwhile.
            let (Ok(name), Some(nice)) = (fs::read_to_string(task.path().join("comm")), nice(&tid)) else { continue };
            if name.starts_with(THREAD_NAME_PREFIX) {
                background += 1;
                assert_eq!(nice, (own + BACKGROUND_NICE_LEVELS).min(NICE_MAX), "{name}");
            } else if tid == std::process::id().to_string() {
                assert_eq!(nice, own, "the main thread keeps its priority");
            }
        }
        assert!(background > 0, "RocksDB started its background threads");
    }
}
