//! Support for black-box tests: start real `ferryd` processes on free ports in
//! temporary directories, run the real `ferry` CLI, and stop them by PID.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub use tempfile::TempDir;

mod cluster;
pub mod mirror;
mod raw_stream;
pub mod s3;
mod workload;
pub use cluster::{free_addr, Cluster, Stored};
pub use raw_stream::RawStream;
pub use workload::{ack_until_backlog_empty, receive_all_across_a_kill, Published, Publisher};

/// The directory holding the workspace's binaries (`ferryd`, `ferry`): next to
/// the test executable's `deps/` folder, or `$FERRY_BIN_DIR`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FERRY_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`, which `make test` does)",
        path.display()
    );
    path
}

/// Data groups of the clusters tests form unless they choose: fewer than
/// ferryd's default (30), which three nodes on a 2-core CI machine would pay
/// for in every test, but more than none, so the suite runs the paths a
/// cluster formed with the default runs (placed topics, forwarding, merged
/// delivery). `legacy_single_group.rs` runs a cluster without data groups.
pub const DATA_GROUPS: u32 = 4;

/// A `ferryd` child process. Killed when dropped.
pub struct Ferryd {
    child: Option<Child>,
    addr: String,
    data_dir: PathBuf,
    log: PathBuf,
    extra_args: Vec<String>,
}

impl Ferryd {
    /// Starts `ferryd` on a free loopback port (see [`free_addr`]; a restart
    /// reuses it) with its data in `data_dir` and waits until it serves.
    pub fn start(data_dir: &Path) -> Ferryd {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra_args: &[&str]) -> Ferryd {
        Self::start_at(data_dir, &free_addr(), extra_args)
    }

    /// Starts `ferryd` listening on `listen` with extra flags.
    pub fn start_at(data_dir: &Path, listen: &str, extra_args: &[&str]) -> Ferryd {
        let mut ferryd = Ferryd {
            child: None,
            addr: String::new(),
            data_dir: data_dir.to_owned(),
            log: data_dir.with_extension("log"),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        ferryd.spawn(listen);
        ferryd
    }

    fn spawn(&mut self, listen: &str) {
        let log = File::options().create(true).append(true).open(&self.log).expect("open ferryd log");
        let mut child = Command::new(binary("ferryd"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(listen)
            .args(&self.extra_args)
            .args(self.default_data_groups())
            .env("FERRY_LOG", "info,openraft=warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn ferryd");
        let stdout = child.stdout.take().expect("ferryd stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read ferryd stdout");
        let Some(addr) = line.trim().strip_prefix("ferryd listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ferryd did not start (stdout {line:?}); its log:\n{}", self.log_text());
        };
        self.addr = addr.to_owned();
        self.child = Some(child);
    }

    /// `--data-groups` [`DATA_GROUPS`] unless the test chose a number.
    fn default_data_groups(&self) -> Vec<String> {
        let chosen = self.extra_args.iter().any(|arg| arg == "--data-groups" || arg.starts_with("--data-groups="));
        if chosen {
            Vec::new()
        } else {
            vec!["--data-groups".to_owned(), DATA_GROUPS.to_string()]
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the process wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `bytes` (about) of what the process wrote to stderr.
    pub fn log_tail(&self, bytes: usize) -> String {
        let log = self.log_text();
        let mut start = log.len().saturating_sub(bytes);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        log[start..].to_owned()
    }

    /// SIGKILL, no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 ferryd");
            child.wait().expect("reap ferryd");
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let status = Command::new("kill").args(["-TERM", &pid]).status().expect("send SIGTERM");
            assert!(status.success(), "kill -TERM {pid}");
            let status = child.wait().expect("wait for ferryd");
            assert!(status.success(), "ferryd exited with {status}; log:\n{}", self.log_text());
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the process again on the same data directory and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart a running ferryd");
        let addr = self.addr.clone();
        // The old port is free again; reuse it so clients keep their address.
        for attempt in 0.. {
            if std::net::TcpListener::bind(&addr).is_ok() || attempt == 50 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.spawn(&addr);
    }

    /// Sets the value following `flag` in the arguments of later restarts.
    pub fn set_arg(&mut self, flag: &str, value: &str) {
        let at = self.extra_args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("no {flag} argument"));
        self.extra_args[at + 1] = value.to_owned();
    }

    /// Starts the process again on the same data directory, listening on
    /// `listen` (`127.0.0.1:0` for any free port; [`Ferryd::addr`] tells which).
    pub fn restart_at(&mut self, listen: &str) {
        assert!(self.child.is_none(), "restart a running ferryd");
        self.spawn(listen);
    }
}

impl Drop for Ferryd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The SHA-256 of `secret` in hex, as an `--auth-file` lists a token
/// (computed by `sha256sum`, not by the code under test).
pub fn token_hash(secret: &str) -> String {
    let out =
        Command::new("sh").arg("-c").arg(format!("printf %s '{secret}' | sha256sum")).output().expect("run sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("a hash").to_owned()
}

/// Runs the `ferry` CLI against `server` with `stdin` as its input.
pub fn ferry(server: &str, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(binary("ferry"))
        .arg("--server")
        .arg(server)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferry");
    let mut input = child.stdin.take().expect("ferry stdin");
    input.write_all(stdin).expect("write ferry stdin");
    drop(input);
    child.wait_with_output().expect("run ferry")
}

/// Runs the CLI and returns its stdout, failing the test if it failed.
pub fn ferry_ok(server: &str, args: &[&str], stdin: &[u8]) -> String {
    let output = ferry(server, args, stdin);
    assert!(
        output.status.success(),
        "ferry {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Moves the clock of a `ferryd` started with `--unsafe-manual-clock`.
pub async fn advance_clock(addr: &str, by: Duration) {
    use ferry_proto::internal::testing_client::TestingClient;
    use ferry_proto::internal::AdvanceClockRequest;
    let mut client = TestingClient::connect(format!("http://{addr}")).await.expect("connect to the testing service");
    let millis = u64::try_from(by.as_millis()).expect("millis");
    client.advance_clock(AdvanceClockRequest { millis }).await.expect("advance the clock");
}

/// Polls `check` every 50 ms until it returns `Some`, for up to `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < give_up, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Bytes on disk under `dir`, counting each hard-linked file once (snapshots
/// share files with the live database).
pub fn disk_usage(dir: &Path) -> u64 {
    fn walk(dir: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
        let mut total = 0;
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                total += walk(&entry.path(), seen);
            } else if seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
        total
    }
    walk(dir, &mut std::collections::HashSet::new())
}

/// Bytes on disk per directory under `dir` (two levels), for failure messages.
pub fn disk_report(dir: &Path) -> String {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            lines.push(format!("{}: {}", path.display(), disk_usage(&path)));
            for inner in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                if inner.path().is_dir() {
                    lines.push(format!("  {}: {}", inner.path().display(), disk_usage(&inner.path())));
                }
            }
        }
    }
    lines.join("\n")
}

/// Incompressible bytes, reproducibly (xorshift), so sizes on disk are real.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A plain HTTP/1.1 GET, the whole response as text.
pub async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect to the metrics endpoint");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    socket.read_to_string(&mut response).await.expect("read");
    response
}
