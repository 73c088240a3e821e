//! The overlay against a model where a file is two byte vectors: what readers
//! see now, and what is on the disk.

use std::io;

use proptest::prelude::*;

use crate::powerfs::overlay::{Disk, Overlay};

impl Disk for Vec<u8> {
    fn read_at_zero_filled(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        buf.fill(0);
        let start = (offset as usize).min(self.len());
        let end = (start + buf.len()).min(self.len());
        buf[..end - start].copy_from_slice(&self[start..end]);
        Ok(())
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        write_model(self, offset, buf);
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.resize(len as usize, 0);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(Vec::len(self) as u64)
    }
}

fn write_model(file: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let (start, end) = (offset as usize, offset as usize + data.len());
    if file.len() < end {
        file.resize(end, 0);
    }
    file[start..end].copy_from_slice(data);
}

#[derive(Debug, Clone)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    Truncate(u64),
    Sync,
    Lose,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..300, prop::collection::vec(any::<u8>(), 1..80)).prop_map(|(offset, data)| Op::Write { offset, data }),
        2 => (0u64..300).prop_map(Op::Truncate),
        1 => Just(Op::Sync),
        1 => Just(Op::Lose),
    ]
}

proptest! {
    #[test]
    fn overlay_reads_syncs_and_loses_like_the_model(
        ops in prop::collection::vec(op(), 1..40),
        probes in prop::collection::vec((0u64..400, 0u32..200), 4),
    ) {
        let mut disk: Vec<u8> = Vec::new();
        let mut overlay: Option<Overlay> = None;
        let (mut seen, mut durable) = (Vec::new(), Vec::new());
        for op in ops {
            let current = overlay.get_or_insert_with(|| Overlay::new(disk.len() as u64));
            match op {
                Op::Write { offset, data } => {
                    current.write(offset, &data);
                    write_model(&mut seen, offset, &data);
                }
                Op::Truncate(len) => {
                    current.truncate(len);
                    seen.resize(len as usize, 0);
                }
                Op::Sync => {
                    current.apply(&mut disk).expect("apply to a vector");
                    overlay = None;
                    durable = seen.clone();
                }
                Op::Lose => {
                    overlay = None;
                    seen = durable.clone();
                }
            }
            let view = overlay.clone().unwrap_or_else(|| Overlay::new(disk.len() as u64));
            prop_assert_eq!(view.len(), seen.len() as u64);
            prop_assert_eq!(&view.read(&disk, 0, 1000).expect("read"), &seen);
            for (offset, size) in &probes {
                let (start, end) = ((*offset as usize).min(seen.len()), (*offset as usize + *size as usize).min(seen.len()));
                prop_assert_eq!(&view.read(&disk, *offset, *size).expect("read"), &seen[start..end]);
            }
            prop_assert_eq!(&disk, &durable);
        }
    }
}

#[test]
fn appends_merge_into_one_extent_counted_once() {
    let mut overlay = Overlay::new(0);
    for chunk in 0..100u64 {
        overlay.write(chunk * 10, &[chunk as u8; 10]);
    }
    overlay.write(5, &[0xff; 20]); // an overwrite adds no memory
    assert_eq!(overlay.dirty_bytes(), 1000);
    overlay.truncate(400);
    assert_eq!(overlay.dirty_bytes(), 400);
}
