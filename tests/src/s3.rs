//! A real S3 server for the ETL's tests: `s3s-fs`, the S3 API over a local
//! directory, served in-process on a loopback port, with signatures checked.

use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;

pub const ACCESS_KEY: &str = "ferry-test-access";
pub const SECRET_KEY: &str = "ferry-test-secret";
pub const REGION: &str = "us-east-1";

/// An S3 endpoint serving `dir`, whose subdirectories are its buckets.
pub struct S3Server {
    pub endpoint: String,
}

impl S3Server {
    /// Serves S3 over `dir` on a free port until the runtime ends; makes
    /// `bucket` (a directory) first.
    pub async fn start(dir: &Path, bucket: &str) -> Self {
        std::fs::create_dir_all(dir.join(bucket)).expect("a bucket is a directory");
        let mut builder = s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(dir).expect("s3s-fs"));
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let service = service.clone();
                tokio::spawn(async move {
                    let connection = ConnectionBuilder::new(TokioExecutor::new());
                    let _ = connection.serve_connection(TokioIo::new(socket), service).await;
                });
            }
        });
        Self { endpoint: format!("http://{addr}") }
    }

    /// `object_store` options that point an S3 client here.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_virtual_hosted_style_request", "false"),
            ("aws_region", REGION),
            ("aws_access_key_id", ACCESS_KEY),
            ("aws_secret_access_key", SECRET_KEY),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
    }

    /// The same as the `AWS_*` environment a process reads them from.
    pub fn env(&self) -> Vec<(String, String)> {
        self.options().into_iter().map(|(key, value)| (key.to_uppercase(), value)).collect()
    }
}
