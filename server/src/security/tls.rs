//! TLS for the gRPC port (rustls through tonic): the node's certificate
//! and key for what it serves, and the CA its peers' certificates are
//! checked against when it calls them (Raft, forwarded calls, joining).
//! Peers name each other by the addresses in the membership, so each
//! node's certificate must hold the host name or IP it advertises.

use std::net::SocketAddr;
use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// What the node serves with: `cert` (PEM, its chain) and `key` (PEM).
pub fn server_tls(cert: &Path, key: &Path) -> Result<ServerTlsConfig, String> {
    ferry_client::options::install_crypto_provider();
    let identity = Identity::from_pem(read(cert, "--tls-cert")?, read(key, "--tls-key")?);
    Ok(ServerTlsConfig::new().identity(identity))
}

/// The CA (PEM) the node checks the peers it calls against.
pub fn read_ca(ca: &Path) -> Result<Vec<u8>, String> {
    read(ca, "--tls-ca")
}

/// How the node checks the peers it calls: their certificates must chain
/// to the CA `ca_pem`.
pub fn peer_tls(ca_pem: &[u8]) -> ClientTlsConfig {
    ferry_client::options::install_crypto_provider();
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem))
}

/// Plaintext only where nobody else can listen: a loopback address, unless
/// the operator says the network is private (`--insecure-plaintext`).
pub fn check_plaintext_allowed(listen: SocketAddr, tls: bool, insecure_plaintext: bool) -> Result<(), String> {
    if tls || insecure_plaintext || listen.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "listening on {listen} in plaintext: give --tls-cert and --tls-key (and --tls-ca for the peers), \
         or --insecure-plaintext on a network that is private"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_is_refused_off_loopback_unless_asked_for() {
        let public: SocketAddr = "0.0.0.0:7070".parse().expect("addr");
        let local: SocketAddr = "127.0.0.2:7070".parse().expect("addr");
        assert!(check_plaintext_allowed(local, false, false).is_ok());
        assert!(check_plaintext_allowed(public, true, false).is_ok());
        assert!(check_plaintext_allowed(public, false, true).is_ok());
        let refused = check_plaintext_allowed(public, false, false).expect_err("refused");
        assert!(refused.contains("--tls-cert") && refused.contains("--insecure-plaintext"), "{refused}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let err =
            server_tls(Path::new("/nonexistent/cert.pem"), Path::new("/nonexistent/key.pem")).expect_err("missing");
        assert!(err.starts_with("--tls-cert /nonexistent/cert.pem"), "{err}");
    }
}
