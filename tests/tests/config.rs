//! `ferryd --config FILE`: settings from a TOML file, beaten by the
//! environment and the command line; `--print-config` shows what is in force;
//! an unknown key or a bad value stops ferryd before it touches anything, with
//! an error naming the file, the key and the allowed range.

use std::path::Path;
use std::process::{Command, Output};

use ferry_tests::{binary, free_addr, http_get, Ferryd, TempDir};

fn ferryd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary("ferryd"));
    command.args(args).env_remove("FERRY_OUTSTANDING_MAX").env_remove("FERRY_LISTEN");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run ferryd")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the config file");
    path.to_string_lossy().into_owned()
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
    let dir = TempDir::new().expect("temp dir");
    let text = "listen = \"127.0.0.1:7801\"\noutstanding_max = 5000\ndata_groups = 4\n\
                peers = { 1 = \"127.0.0.1:7801\", 2 = \"127.0.0.1:7802\" }\n";
    let file = write(dir.path(), "ferry.toml", text);
    let printed = |args: &[&str], env: &[(&str, &str)]| {
        let output = ferryd(args, env);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8")
    };

    let from_file = printed(&["--config", &file, "--print-config"], &[]);
    for line in [
        "listen = \"127.0.0.1:7801\"",
        "outstanding_max = 5000",
        "data_groups = 4",
        "peers = \"1=127.0.0.1:7801,2=127.0.0.1:7802\"",
        "snapshot_every_entries = 10000",
        "# metrics_listen is not set",
    ] {
        assert!(from_file.lines().any(|l| l == line), "no {line:?} in:\n{from_file}");
    }
    let overridden = printed(
        &["--config", &file, "--listen", "127.0.0.1:9", "--print-config"],
        &[("FERRY_OUTSTANDING_MAX", "7"), ("FERRY_LISTEN", "127.0.0.1:8")],
    );
    assert!(overridden.contains("listen = \"127.0.0.1:9\""), "the flag wins:\n{overridden}");
    assert!(overridden.contains("outstanding_max = 7"), "the environment beats the file:\n{overridden}");
    assert!(overridden.contains("data_groups = 4"), "the file beats the default:\n{overridden}");
    // A setting that conflicts with the file's (`--join` against `peers`)
    // makes the file's give way rather than fail.
    let joining = printed(&["--config", &file, "--join", "127.0.0.1:7901", "--print-config"], &[]);
    assert!(joining.contains("join = \"127.0.0.1:7901\"") && joining.contains("# peers is not set"), "{joining}");
}

#[test]
fn an_unknown_key_or_a_bad_value_is_an_error_naming_the_key_and_nothing_starts() {
    let dir = TempDir::new().expect("temp dir");
    let data_dir = dir.path().join("data");
    let data = data_dir.to_string_lossy().into_owned();
    let cases = [
        ("outstandng_max = 10\n", vec!["unknown key \"outstandng_max\"", "outstanding_max"]),
        ("outstanding_max = 0\n", vec!["key \"outstanding_max\"", "1..=1000000"]),
        ("data_groups = 300\n", vec!["key \"data_groups\"", "0..=256"]),
        ("listen = 1.5\n", vec!["key \"listen\"", "float"]),
        ("listen = \n", vec!["ferry.toml"]),
    ];
    for (text, expected) in cases {
        let file = write(dir.path(), "ferry.toml", text);
        let output = ferryd(&["--config", &file, "--data-dir", &data], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text:?}: {stderr}");
        assert!(stderr.contains(&file), "{text:?}: the error names the file: {stderr}");
        for part in expected {
            assert!(stderr.contains(part), "{text:?}: no {part:?} in {stderr}");
        }
        assert!(!data_dir.exists(), "{text:?}: nothing was created");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_runs_with_the_settings_of_its_file() {
    let dir = TempDir::new().expect("temp dir");
    let metrics = free_addr();
    let file = write(dir.path(), "ferry.toml", &format!("metrics_listen = \"{metrics}\"\n"));
    let _node = Ferryd::start_with(&dir.path().join("node"), &["--config", &file]);
    let scrape = http_get(&metrics, "/metrics").await;
    assert!(scrape.starts_with("HTTP/1.1 200") && scrape.contains("ferry_raft_term{group=\"0\"}"), "{scrape}");
}

#[test]
fn security_settings_and_switches_come_from_the_file_and_print_back_as_it_takes_them() {
    let dir = TempDir::new().expect("temp dir");
    let text = "tls_cert = \"/etc/ferry/tls/node.pem\"\ntls_key = \"/etc/ferry/tls/node.key\"\n\
                tls_ca = \"/etc/ferry/tls/ca.pem\"\ninsecure_plaintext = true\n";
    let file = write(dir.path(), "ferry.toml", text);
    let output = ferryd(&["--config", &file, "--print-config"], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).expect("utf-8");
    for line in
        ["tls_cert = \"/etc/ferry/tls/node.pem\"", "tls_key = \"/etc/ferry/tls/node.key\"", "insecure_plaintext = true"]
    {
        assert!(printed.lines().any(|l| l == line), "{line} in\n{printed}");
    }
    // What --print-config prints is a file ferryd takes.
    let again = write(
        dir.path(),
        "printed.toml",
        &printed.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n"),
    );
    let output = ferryd(&["--config", &again, "--print-config"], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // A flag given alone still means true; `false` in the file turns it off.
    let off = write(dir.path(), "off.toml", "insecure_plaintext = false\n");
    let output = ferryd(&["--config", &off, "--insecure-plaintext", "--print-config"], &[]);
    assert!(String::from_utf8_lossy(&output.stdout).lines().any(|l| l == "insecure_plaintext = true"));
}
