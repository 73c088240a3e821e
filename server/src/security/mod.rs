//! Keeping strangers out: TLS on the gRPC port, client tokens with
//! per-topic permissions, and a peer token the nodes present to each other.
//!
//! - `tls.rs`: the node's certificate for what it serves, and the CA it
//!   checks its peers' certificates against when it calls them. Without a
//!   certificate a node listens in plaintext, which it does only on a
//!   loopback address unless told `--insecure-plaintext`.
//! - `grants.rs`: the token file (`--auth-file`): each token, stored as its
//!   SHA-256, names what it may do to which topics ([`Action`]), and
//!   [`authorize`], which the services call with the topic a call touches.
//! - `authenticate.rs`: the tower layer that turns a call's `authorization:
//!   Bearer …` header into a [`Principal`] before any service sees it: the
//!   peer token is a peer (every right, and the only way into the internal
//!   services), a known token its grant, anything else UNAUTHENTICATED. The
//!   health service stays open for probes.
//!
//! With neither file given, nothing is checked (a node on localhost, or
//! behind a network that is the boundary).

mod authenticate;
pub mod cluster_id;
mod grants;
mod tls;

use std::path::Path;
use std::sync::Arc;

pub use authenticate::AuthenticateLayer;
pub use cluster_id::{ClusterIdentity, CLUSTER_ID_HEADER};
pub use grants::{authorize, authorize_as, sha256_hex, Action, Grants, Principal};
pub use tls::check_plaintext_allowed;
use tonic::transport::{ClientTlsConfig, ServerTlsConfig};

/// The metadata key a token travels in, as `Bearer <token>`.
pub const AUTHORIZATION: &str = "authorization";

/// A node's security settings, read from their files.
#[derive(Clone, Default)]
pub struct Security {
    /// What it serves with; plaintext when `None`.
    pub server_tls: Option<ServerTlsConfig>,
    /// The CA (PEM) its peers' certificates chain to.
    pub peer_ca_pem: Option<Vec<u8>>,
    /// Client tokens; `None`: the public services take anyone.
    pub grants: Option<Arc<Grants>>,
    /// What the nodes present to each other.
    pub peer_token: Option<String>,
    /// Plaintext allowed off loopback.
    pub insecure_plaintext: bool,
}

/// Never prints the peer token.
impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.server_tls.is_some())
            .field("peer_ca", &self.peer_ca_pem.is_some())
            .field("tokens", &self.grants.as_ref().map(|g| g.len()))
            .field("peer_token", &self.peer_token.as_ref().map(|_| "<redacted>"))
            .field("insecure_plaintext", &self.insecure_plaintext)
            .finish()
    }
}

/// Where a node's security settings come from (`ferryd`'s flags).
#[derive(Debug, Clone, Default)]
pub struct SecurityFiles<'a> {
    pub tls_cert: Option<&'a Path>,
    pub tls_key: Option<&'a Path>,
    pub tls_ca: Option<&'a Path>,
    pub auth_file: Option<&'a Path>,
    pub peer_token_file: Option<&'a Path>,
    pub insecure_plaintext: bool,
}

impl Security {
    /// Reads and checks the files; errors name the flag.
    pub fn load(files: &SecurityFiles<'_>) -> Result<Self, String> {
        let server_tls = match (files.tls_cert, files.tls_key) {
            (Some(cert), Some(key)) => Some(tls::server_tls(cert, key)?),
            (None, None) => None,
            _ => return Err("--tls-cert and --tls-key go together".into()),
        };
        if server_tls.is_some() != files.tls_ca.is_some() {
            return Err("--tls-ca goes with --tls-cert: the nodes call each other over TLS".into());
        }
        let peer_ca_pem = files.tls_ca.map(tls::read_ca).transpose()?;
        let grants = files.auth_file.map(Grants::load).transpose()?.map(Arc::new);
        let peer_token = match files.peer_token_file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| format!("--peer-token-file {}: {e}", path.display()))?;
                let token = text.trim().to_owned();
                if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(format!(
                        "--peer-token-file {}: the token must be 16 or more printable characters",
                        path.display()
                    ));
                }
                Some(token)
            }
            None => None,
        };
        if grants.is_some() && peer_token.is_none() {
            return Err(
                "--auth-file needs --peer-token-file: without it the nodes' own services would take anyone".into()
            );
        }
        Ok(Self { server_tls, peer_ca_pem, grants, peer_token, insecure_plaintext: files.insecure_plaintext })
    }

    /// How the node calls its peers: TLS checked against their CA.
    pub fn peer_tls(&self) -> Option<ClientTlsConfig> {
        self.peer_ca_pem.as_deref().map(tls::peer_tls)
    }

    /// The layer that settles who calls: which cluster (for calls of its
    /// nodes, by `cluster`'s id), and with what token.
    pub fn authenticate(&self, cluster: ClusterIdentity) -> AuthenticateLayer {
        AuthenticateLayer::new(self.grants.clone(), self.peer_token.as_deref()).cluster(cluster)
    }

    /// How this node calls the cluster's public API as a peer (to join it).
    pub fn peer_client_options(&self) -> ferry_client::ClientOptions {
        ferry_client::ClientOptions {
            token: self.peer_token.clone(),
            tls_ca_pem: self.peer_ca_pem.clone(),
            ..ferry_client::ClientOptions::default()
        }
    }
}
