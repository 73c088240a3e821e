//! deploy/ is exercised, not only written: `scripts/check-deploy` lints the
//! systemd unit, the Dockerfile, the compose file and the Kubernetes
//! manifests with their own tools, then runs what each declares against the
//! binaries built here, with a throwaway CA, certificates and tokens made by
//! deploy/make-secrets, and checks that the nodes form one working cluster
//! over TLS that asks for tokens and refuses strangers, with TLS in force
//! rather than --insecure-plaintext (and, for the runbook's steps, that
//! nodes join, are replaced, restart one at a time and take a rotated
//! token). One test per part, so a failure names the part; the script's
//! output says what failed.

use std::process::Command;

use ferry_tests::bin_dir;

fn check(part: &str) {
    // The binaries must be there: `binary` says how to build them if not.
    ferry_tests::binary("ferryd");
    ferry_tests::binary("ferry");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/check-deploy");
    let output = Command::new(script)
        .arg(part)
        .env("FERRY_BIN_DIR", bin_dir())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "scripts/check-deploy {part} failed:\n{stdout}\n{stderr}");
}

#[test]
fn the_systemd_unit_verifies_and_its_instances_form_a_cluster_over_tls_with_tokens() {
    check("systemd");
}

#[test]
fn the_image_lints_clean_and_its_entrypoint_serves_tls_with_tokens() {
    check("container");
}

#[test]
fn the_compose_services_form_a_cluster_over_tls_with_tokens() {
    check("compose");
}

#[test]
fn the_kubernetes_manifests_validate_and_the_pods_form_grow_and_heal_a_secured_cluster() {
    check("kubernetes");
}

#[test]
fn the_runbook_names_only_commands_that_exist_and_makes_its_secrets() {
    check("runbook");
}
