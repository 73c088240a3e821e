//! The output store against a real S3 server: `s3s-fs`, an S3 API over a
//! local directory, started in-process on a loopback port and reached by
//! `object_store`'s S3 client over HTTP, signatures and all.

use bytes::Bytes;
use ferry_etl::store::{Created, Output};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;

const ACCESS_KEY: &str = "ferry-test-access";
const SECRET_KEY: &str = "ferry-test-secret";
const BUCKET: &str = "etl-bucket";

/// Serves S3 over `dir` on a free port; returns the endpoint URL.
async fn s3_server(dir: &std::path::Path) -> String {
    std::fs::create_dir_all(dir.join(BUCKET)).expect("a bucket is a directory");
    let mut builder = s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(dir).expect("s3s-fs"));
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let _ =
                    ConnectionBuilder::new(TokioExecutor::new()).serve_connection(TokioIo::new(socket), service).await;
            });
        }
    });
    format!("http://{addr}")
}

async fn bucket(dir: &std::path::Path) -> Output {
    let endpoint = s3_server(dir).await;
    let options = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_virtual_hosted_style_request", "false"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", ACCESS_KEY),
        ("aws_secret_access_key", SECRET_KEY),
    ];
    Output::open(&format!("s3://{BUCKET}/hours"), &options).expect("an S3 output")
}

#[tokio::test]
async fn on_s3_a_name_is_written_once_listed_under_the_prefix_and_deleted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = bucket(dir.path()).await;

    assert_eq!(output.create("t/h1/_staging/a", Bytes::from_static(b"first")).await.expect("put"), Created::New);
    assert_eq!(
        output.create("t/h1/_staging/a", Bytes::from_static(b"second")).await.expect("put"),
        Created::AlreadyThere,
        "S3 conditional puts (If-None-Match: *) keep the first"
    );
    assert_eq!(output.get("t/h1/_staging/a").await.expect("get").as_deref(), Some(&b"first"[..]));
    output.create("t/h1/_SUCCESS", Bytes::from_static(b"{}")).await.expect("put");

    let names: Vec<String> = output.list("t/h1").await.expect("list").into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["_SUCCESS", "_staging/a"]);
    assert!(dir.path().join(BUCKET).join("hours/t/h1/_SUCCESS").is_file(), "under the URL's prefix in the bucket");

    output.delete("t/h1/_staging/a").await.expect("delete");
    assert_eq!(output.get("t/h1/_staging/a").await.expect("get"), None);
}
