//! Writes the history while the run goes: every event gets the next index
//! and its time, and reaches the file at once, so a harness that dies still
//! leaves a history to read.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::history::{self, Event, Kind, Op, NEMESIS_PROCESS};

#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    out: Mutex<(u64, BufWriter<File>)>,
    next_process: AtomicU64,
}

impl Recorder {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path)?;
        Ok(Self {
            started: Instant::now(),
            out: Mutex::new((0, BufWriter::new(file))),
            next_process: AtomicU64::new(0),
        })
    }

    /// A process id no one has used.
    pub fn new_process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    pub fn record(&self, process: u64, kind: Kind, op: Op) {
        let mut out = self.out.lock();
        let time_us = self.started.elapsed().as_micros() as u64;
        let event = Event { index: out.0, time_us, process, kind, op };
        out.0 += 1;
        // A history that cannot be written makes the run worthless; say so loudly.
        if let Err(error) = history::write(&mut out.1, &event).and_then(|()| Ok(out.1.flush()?)) {
            eprintln!("ferry-jepsen: writing the history failed: {error}");
        }
    }

    /// Records a harness event (a fault, a phase, a replica log).
    pub fn note(&self, op: Op) {
        self.record(NEMESIS_PROCESS, Kind::Info, op);
    }
}
