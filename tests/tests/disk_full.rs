//! A node whose disk runs low: on a small ext4 filesystem of its own (a
//! loop device), publishes and new topics fail RESOURCE_EXHAUSTED once free
//! space falls under `--disk-reserve-bytes`, reads and acks keep working,
//! the node stays up, and publishing resumes once space returns.
//!
//! Needs root (mount); skipped otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferry_client::{Client, Code, Error, Message, SubscriptionSettings, TopicSettings};
use ferry_tests::{free_addr, http_get, Ferryd, TempDir};

const FILESYSTEM_MIB: u64 = 1024;
/// Just above the least reserve a node takes (two raft-log WAL files).
const RESERVE_BYTES: u64 = 300 << 20;
const MESSAGE_BYTES: usize = 64 * 1024;

/// An ext4 filesystem in a sparse file, mounted for the test's life.
struct SmallFilesystem {
    mount: PathBuf,
    _dir: TempDir,
}

impl SmallFilesystem {
    fn mount(mib: u64) -> Option<Self> {
        let dir = TempDir::new().expect("temp dir");
        let image = dir.path().join("disk.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).expect("mount point");
        let sized = std::fs::File::create(&image).and_then(|f| f.set_len(mib << 20));
        sized.expect("size the image");
        let mkfs = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image).status();
        if !mkfs.is_ok_and(|s| s.success()) {
            return None;
        }
        let mounted = Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mount).status();
        mounted.is_ok_and(|s| s.success()).then_some(Self { mount, _dir: dir })
    }

    fn free_bytes(&self) -> u64 {
        let out = Command::new("df").args(["--output=avail", "-B1"]).arg(&self.mount).output().expect("df");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().nth(1).and_then(|l| l.trim().parse().ok()).expect("df figure")
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

/// Fills the filesystem with a file until `leave` bytes stay free.
fn fill(fs: &SmallFilesystem, path: &Path, leave: u64) {
    let size = fs.free_bytes().saturating_sub(leave);
    let status = Command::new("fallocate").args(["-l", &size.to_string()]).arg(path).status().expect("fallocate");
    assert!(status.success(), "fallocate {size} bytes");
}

fn is_disk_low(e: &Error) -> bool {
    matches!(e, Error::Status { code: Code::ResourceExhausted, message, .. } if message.contains("--disk-reserve-bytes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_low_on_disk_refuses_growth_serves_reads_and_acks_and_resumes_when_space_returns() {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let Some(fs) = is_root.then(|| SmallFilesystem::mount(FILESYSTEM_MIB)).flatten() else {
        eprintln!("skipped: a filesystem of its own needs root, mkfs.ext4 and a loop device");
        return;
    };
    let data = fs.mount.join("data");
    let metrics = free_addr();
    let reserve = RESERVE_BYTES.to_string();
    let mut node = Ferryd::start_with(&data, &["--disk-reserve-bytes", &reserve, "--metrics-listen", &metrics]);
    assert!(http_get(&metrics, "/metrics").await.contains("\nferry_disk_low 0\n"), "not low at first");
    let client = Client::connect(node.addr()).await.expect("connect");
    client.create_topic("t", TopicSettings::default()).await.expect("topic");
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(60), ..Default::default() };
    client.create_subscription("s", "t", settings).await.expect("subscription");

    // Leave 32 MiB above the reserve, then publish until refused.
    let filler = fs.mount.join("filler");
    fill(&fs, &filler, RESERVE_BYTES + (32 << 20));
    let payload = "x".repeat(MESSAGE_BYTES);
    let mut published = 0usize;
    let refusal = loop {
        let batch = (0..4).map(|_| Message::new(payload.clone())).collect();
        match client.publish("t", batch).await {
            Ok(positions) => published += positions.len(),
            Err(e) => break e,
        }
        assert!(published < 4_000, "{published} publishes of 64 KiB never ran into the reserve");
    };
    assert!(is_disk_low(&refusal), "refused for disk space, naming the setting: {refusal:?}");
    assert!(published > 0, "publishes went through until the reserve was reached");
    assert!(fs.free_bytes() > 0, "the reserve kept the disk from filling");
    let scraped = http_get(&metrics, "/metrics").await;
    assert!(scraped.contains("\nferry_disk_low 1\n"), "operators see it: {scraped}");
    assert!(scraped.contains(&format!("\nferry_disk_reserve_bytes {RESERVE_BYTES}\n")), "{scraped}");

    // Still refused (not a blip); a new topic too; reads and acks go on.
    let again = client.publish("t", vec![Message::new("one more")]).await.expect_err("still low");
    assert!(is_disk_low(&again), "{again:?}");
    let topic = client.create_topic("u", TopicSettings::default()).await.expect_err("no new topics");
    assert!(is_disk_low(&topic), "{topic:?}");
    assert_eq!(client.get_topic("t").await.expect("reads work").name, "t");
    let pulled = client.pull("s", 10, Duration::from_secs(5)).await.expect("pull works");
    assert!(!pulled.is_empty(), "messages stored before the refusal are delivered");
    let ack_ids: Vec<String> = pulled.iter().map(|m| m.ack_id.clone()).collect();
    client.acknowledge("s", &ack_ids).await.expect("acks work: they let data go");

    // Space returns: publishing resumes without a restart.
    std::fs::remove_file(&filler).expect("remove the filler");
    let give_up = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match client.publish("t", vec![Message::new("after")]).await {
            Ok(_) => break,
            Err(e) if is_disk_low(&e) && tokio::time::Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("publishing did not resume once space returned: {e:?}"),
        }
    }
    client.create_topic("u", TopicSettings::default()).await.expect("new topics again");
    node.stop(); // a clean exit: the node never hit a write error
}
