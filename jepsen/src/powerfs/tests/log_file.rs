//! Files written the way RocksDB writes them: a log appended through one
//! handle and fdatasynced every few records, and a table file written in
//! large chunks and synced once.

use std::fs::{self, OpenOptions};
use std::io::Write;

use super::Fixture;

fn record(index: u32) -> String {
    format!("record-{index:04}\n")
}

#[test]
fn log_keeps_exactly_the_records_before_the_last_fdatasync_and_goes_on_from_there() {
    let Some(fx) = Fixture::new() else { return };
    let path = fx.path("000001.log");
    let mut log = OpenOptions::new().create(true).append(true).open(&path).expect("open log");
    for index in 0..100 {
        log.write_all(record(index).as_bytes()).expect("append");
        if index % 10 == 9 && index < 90 {
            log.sync_data().expect("fdatasync");
        }
    }
    drop(log);

    let lost = fx.mount.lose_unsynced();
    assert_eq!((lost.files, lost.bytes), (1, 10 * record(0).len() as u64));
    let mut expected: String = (0..90).map(record).collect();
    assert_eq!(fs::read_to_string(&path).expect("read log"), expected);

    // A restarted server appends after what was durable, not after what was lost.
    let mut log = OpenOptions::new().append(true).open(&path).expect("reopen log");
    log.write_all(b"after the loss\n").expect("append");
    log.sync_data().expect("fdatasync");
    drop(log);
    fx.mount.lose_unsynced();
    expected.push_str("after the loss\n");
    assert_eq!(fs::read_to_string(&path).expect("read log"), expected);
}

#[test]
fn table_file_written_in_large_chunks_reaches_the_disk_whole_on_fsync() {
    let Some(fx) = Fixture::new() else { return };
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut table = OpenOptions::new().create_new(true).write(true).open(fx.path("000007.sst")).expect("create");
    for chunk in content.chunks(300_000) {
        table.write_all(chunk).expect("write");
    }
    assert_eq!(fx.mount.stats().unsynced_bytes, content.len() as u64);
    table.sync_all().expect("fsync");
    drop(table);

    assert_eq!(fx.mount.stats().unsynced_bytes, 0);
    assert_eq!(fs::read(fx.disk("000007.sst")).expect("read disk"), content);
    assert_eq!(fx.read("000007.sst"), content);
}
