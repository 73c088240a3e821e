//! The output store: where hours go, through `object_store`. `file://`
//! (fsyncing every file and directory it writes before a put returns, as
//! an acknowledged-then-lost file would be a lost event), `s3://` and
//! `gs://` (credentials and endpoints from the usual `AWS_*` / `GOOGLE_*`
//! environment, or options).
//!
//! Every write is create-only: the ETL never overwrites a file, so a name,
//! once written, holds the same bytes for good.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("output {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("storage: {0}")]
    Store(#[from] object_store::Error),
}

/// What a create-only put found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    /// Something was already there under the name; nothing was written.
    AlreadyThere,
}

/// An object under a directory, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Relative to the listed directory.
    pub name: String,
    pub size: u64,
    pub last_modified: SystemTime,
}

#[derive(Debug, Clone)]
pub struct Output {
    store: Arc<dyn ObjectStore>,
    /// Under which every path of the ETL goes (the URL's path, for buckets).
    prefix: Path,
    url: String,
}

impl Output {
    /// Opens `file:///absolute/dir` (made if missing), `s3://bucket[/prefix]`
    /// or `gs://bucket[/prefix]`. `options` are `object_store` config keys
    /// for the bucket stores (e.g. `aws_endpoint`), over the environment's.
    pub fn open(url: &str, options: &[(&str, &str)]) -> Result<Self, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        let prefix = Path::from(parsed.path().trim_start_matches('/'));
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "file" => {
                let dir = parsed.to_file_path().map_err(|()| bad("not an absolute local path"))?;
                std::fs::create_dir_all(&dir).map_err(|e| bad(&e.to_string()))?;
                let local = LocalFileSystem::new_with_prefix(&dir)?.with_fsync(true);
                return Ok(Self { store: Arc::new(local), prefix: Path::default(), url: url.to_owned() });
            }
            "s3" => {
                let mut builder = AmazonS3Builder::from_env().with_url(url);
                for (key, value) in options {
                    builder =
                        builder.with_config(key.parse().map_err(|_| bad(&format!("unknown S3 option {key}")))?, *value);
                }
                Arc::new(builder.build()?)
            }
            "gs" => {
                let mut builder = GoogleCloudStorageBuilder::from_env().with_url(url);
                for (key, value) in options {
                    builder = builder
                        .with_config(key.parse().map_err(|_| bad(&format!("unknown GCS option {key}")))?, *value);
                }
                Arc::new(builder.build()?)
            }
            other => return Err(bad(&format!("scheme {other:?} is not file, s3 or gs"))),
        };
        Ok(Self { store, prefix, url: url.to_owned() })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, relative: &str) -> Path {
        self.prefix.parts().chain(Path::from(relative).parts()).collect()
    }

    /// Writes `bytes` under `relative` unless something is there already.
    pub async fn create(&self, relative: &str, bytes: Bytes) -> Result<Created, StoreError> {
        let put = self.store.put_opts(&self.path(relative), PutPayload::from(bytes), PutMode::Create.into()).await;
        match put {
            Ok(_) => Ok(Created::New),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::AlreadyThere),
            Err(error) => Err(error.into()),
        }
    }

    /// The object under `relative`, if there is one.
    pub async fn get(&self, relative: &str) -> Result<Option<Bytes>, StoreError> {
        match self.store.get(&self.path(relative)).await {
            Ok(found) => Ok(Some(found.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Whether something is stored under `relative` (without reading it).
    pub async fn exists(&self, relative: &str) -> Result<bool, StoreError> {
        match self.store.head(&self.path(relative)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Every object under the directory `relative` (recursively), by name.
    pub async fn list(&self, relative: &str) -> Result<Vec<Listed>, StoreError> {
        let dir = self.path(relative);
        let metas: Vec<_> = self.store.list(Some(&dir)).try_collect().await?;
        let mut listed: Vec<Listed> = metas
            .into_iter()
            .filter_map(|meta| {
                let name = meta
                    .location
                    .prefix_match(&dir)?
                    .map(|part| part.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                Some(Listed { name, size: meta.size, last_modified: meta.last_modified.into() })
            })
            .collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listed)
    }

    /// Removes `relative`; nothing there is no error.
    pub async fn delete(&self, relative: &str) -> Result<(), StoreError> {
        match self.store.delete(&self.path(relative)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> (tempfile::TempDir, Output) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = url::Url::from_directory_path(dir.path().join("out")).expect("a file URL").to_string();
        let output = Output::open(&url, &[]).expect("opens");
        (dir, output)
    }

    #[tokio::test]
    async fn a_name_is_written_once_and_keeps_its_first_bytes() {
        let (_dir, output) = local();
        assert_eq!(output.create("t/a/one", Bytes::from_static(b"first")).await.expect("put"), Created::New);
        assert_eq!(output.create("t/a/one", Bytes::from_static(b"second")).await.expect("put"), Created::AlreadyThere);
        assert_eq!(output.get("t/a/one").await.expect("get").as_deref(), Some(&b"first"[..]));
        assert_eq!(output.get("t/a/none").await.expect("get"), None);
        assert!(output.exists("t/a/one").await.expect("head"));
        assert!(!output.exists("t/a/none").await.expect("head"));
    }

    #[tokio::test]
    async fn listing_a_directory_names_what_is_under_it_relative_to_it() {
        let (dir, output) = local();
        for name in ["t/h1/_staging/b", "t/h1/_staging/a", "t/h1/part-0", "t/h2/x"] {
            output.create(name, Bytes::from_static(b"x")).await.expect("put");
        }
        let names: Vec<String> = output.list("t/h1").await.expect("list").into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["_staging/a", "_staging/b", "part-0"]);
        assert!(output.list("t/h9").await.expect("an empty listing").is_empty());
        output.delete("t/h1/part-0").await.expect("delete");
        output.delete("t/h1/part-0").await.expect("deleting nothing is fine");
        assert!(dir.path().join("out/t/h1/_staging/a").is_file(), "files are plain files under the directory");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, expect) in [("ftp://x/y", "scheme"), ("file://relative", "absolute"), ("not a url", "relative URL")] {
            let error = Output::open(url, &[]).expect_err(url).to_string();
            assert!(error.contains(expect), "{url}: {error}");
        }
    }
}
