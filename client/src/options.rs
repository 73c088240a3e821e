//! How a client reaches a cluster that keeps strangers out: a token sent
//! with every call, and TLS checked against the cluster's CA.
//!
//! [`ClientOptions::from_env`] reads `FERRY_TOKEN` and `FERRY_TLS_CA` (a
//! PEM file), so every program built on this crate (the CLI, the ETL, the
//! mirror) gets them the same way; [`Client::connect`](crate::Client::connect)
//! uses it.

use std::path::Path;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::client::RETRY_BUDGET_DEFAULT;
use crate::error::{Error, Result};

/// A connection to one server: every call on it carries the token.
pub(crate) type Conn = InterceptedService<Channel, Credentials>;

/// How long connecting to one server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 flow-control windows for what servers send us. At h2's default of
/// 64 KiB (hyper's 2 MiB) a stream stalls for a window update every response
/// or two of a thousand 1 KiB messages; these hold several responses of every
/// stream in flight. Memory is bounded all the same: by the server's
/// responses queued per stream and our consumers' flow control.
const STREAM_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
const CONNECTION_WINDOW_BYTES: u32 = 64 * 1024 * 1024;

/// How a [`Client`](crate::Client) connects.
#[derive(Clone)]
pub struct ClientOptions {
    /// Sent as `authorization: Bearer <token>` with every call.
    pub token: Option<String>,
    /// The CA (PEM) the servers' certificates are checked against; with
    /// it the client speaks TLS, without it plaintext.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// How long a call keeps retrying through leader changes and restarts.
    pub retry_budget: Duration,
}

/// Never prints the token.
impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls_ca_pem.is_some())
            .field("retry_budget", &self.retry_budget)
            .finish()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self { token: None, tls_ca_pem: None, retry_budget: RETRY_BUDGET_DEFAULT }
    }
}

impl ClientOptions {
    /// The defaults, with `FERRY_TOKEN` and the CA file `FERRY_TLS_CA` when set.
    pub fn from_env() -> Result<Self> {
        let token = std::env::var("FERRY_TOKEN").ok().filter(|t| !t.is_empty());
        let ca = std::env::var_os("FERRY_TLS_CA").filter(|p| !p.is_empty());
        Self { token, ..Self::default() }.tls_ca_file(ca.as_deref().map(Path::new))
    }

    /// Speaks TLS, checking servers against the CA in the PEM file `path`.
    pub fn tls_ca_file(mut self, path: Option<&Path>) -> Result<Self> {
        if let Some(path) = path {
            let pem = std::fs::read(path).map_err(|e| Error::Config {
                setting: "the TLS CA (--tls-ca, FERRY_TLS_CA)",
                reason: format!("cannot read {}: {e}", path.display()),
            })?;
            self.tls_ca_pem = Some(pem);
        }
        Ok(self)
    }

    /// The credentials every call carries.
    pub(crate) fn credentials(&self) -> Result<Credentials> {
        let token = self.token.as_ref().map(|token| MetadataValue::try_from(format!("Bearer {token}"))).transpose();
        let token = token.map_err(|_| Error::Config {
            setting: "the token (--token, FERRY_TOKEN)",
            reason: "must be printable ASCII".into(),
        })?;
        Ok(Credentials(token))
    }

    /// How `addr` is reached.
    pub(crate) fn endpoint(&self, addr: &str) -> Result<Endpoint> {
        let invalid = |reason: String| Error::InvalidAddress { addr: addr.to_owned(), reason };
        let url = match (addr.contains("://"), self.tls_ca_pem.is_some()) {
            (true, _) => addr.to_owned(),
            (false, true) => format!("https://{addr}"),
            (false, false) => format!("http://{addr}"),
        };
        let mut endpoint = Endpoint::from_shared(url)
            .map_err(|e| invalid(e.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10));
        if let Some(pem) = &self.tls_ca_pem {
            install_crypto_provider();
            let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
            endpoint = endpoint.tls_config(tls).map_err(|e| invalid(e.to_string()))?;
        }
        Ok(endpoint)
    }
}

/// Makes `ring` the process's TLS crypto provider, unless one is set
/// already: rustls cannot choose when, as here, both of its providers are
/// compiled in.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Puts the token (if any) on each call.
#[derive(Debug, Clone)]
pub(crate) struct Credentials(Option<MetadataValue<Ascii>>);

impl Interceptor for Credentials {
    fn call(&mut self, mut request: tonic::Request<()>) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert("authorization", token.clone());
        }
        Ok(request)
    }
}
