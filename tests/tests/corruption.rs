//! A node whose Raft log was damaged on disk refuses to start, naming the
//! damage, instead of coming back without entries it had acknowledged.
//!
//! Found by the fault harness (`ferry-jepsen --nemesis corrupt`): with
//! RocksDB's default WAL recovery, a follower restarted on a log with a few
//! bytes flipped came back with the log cut short at the damage; the leader
//! saw the follower's log go backwards and openraft stopped it with a panic,
//! taking the whole cluster down.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ferry_client::{Client, Message, TopicSettings};
use ferry_tests::{binary, Ferryd, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_damaged_raft_log_refuses_to_start_and_says_why() {
    let dir = TempDir::new().expect("temp dir");
    let data = dir.path().join("node");
    let mut server = Ferryd::start(&data);
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("events", TopicSettings::default()).await.expect("create topic");
    for i in 0..200 {
        client.publish("events", vec![Message::new(format!("event-{i}"))]).await.expect("publish");
    }
    server.kill9();

    let wal = largest_wal(&data.join("raft-log"));
    invert_bytes_in_the_middle(&wal);

    let mut ferryd = Command::new(binary("ferryd"))
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferryd");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = ferryd.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = ferryd.kill();
            panic!("ferryd started on a damaged raft log instead of refusing to");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    ferryd.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    assert!(!status.success(), "ferryd exited successfully on a damaged log");
    assert!(stderr.contains("raft log") && stderr.contains("Corruption"), "the error names the damage: {stderr}");
}

/// The Raft log database's biggest write-ahead log file.
fn largest_wal(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .expect("raft-log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a WAL file")
}

/// Inverts 16 bytes of the first record that ends past the middle of the
/// WAL file and holds at least 16, inside its data, so its checksum no
/// longer matches. Within a record, not anywhere: RocksDB cannot tell a
/// damaged length field in a file's last 32 KiB block from a torn last
/// write, which recovery must tolerate (ARCHITECTURE.md, the raft log);
/// flipping bytes blindly hit one in about one run of five.
fn invert_bytes_in_the_middle(path: &Path) {
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path).expect("open WAL");
    let mut wal = Vec::new();
    file.read_to_end(&mut wal).expect("read WAL");
    assert!(wal.len() > 4096, "the WAL holds the published entries ({} bytes)", wal.len());
    let at = data_of_a_record_past_the_middle(&wal);
    let bytes: Vec<u8> = wal[at..at + 16].iter().map(|byte| !byte).collect();
    file.seek(SeekFrom::Start(at as u64)).expect("seek");
    file.write_all(&bytes).expect("write");
    file.sync_all().expect("sync");
}

/// Where the data of that record starts. A RocksDB WAL is 32 KiB blocks of
/// records, each a 7-byte header (checksum 4, length 2 little-endian, type
/// 1) and its data; a block's last 6 bytes or fewer are padding.
fn data_of_a_record_past_the_middle(wal: &[u8]) -> usize {
    const BLOCK: usize = 32 * 1024;
    const HEADER: usize = 7;
    let middle = wal.len() / 2;
    let mut at = 0;
    loop {
        let left_in_block = BLOCK - at % BLOCK;
        if left_in_block < HEADER {
            at += left_in_block;
            continue;
        }
        assert!(at + HEADER <= wal.len(), "no record of 16 bytes or more ends past the middle");
        let len = usize::from(u16::from_le_bytes([wal[at + 4], wal[at + 5]]));
        let data = at + HEADER;
        if data + len > middle && len >= 16 {
            return data;
        }
        at = data + len;
    }
}
