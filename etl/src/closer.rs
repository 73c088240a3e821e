//! Closing hours: when the watermark has passed an hour (plus the grace)
//! and its staging files have gone quiet, merge them into the hour's parts
//! and write its `_SUCCESS`. Safe to run in every worker at once, and to
//! crash at any step: the `_CLOSING` intent fixes what a close reads and how
//! it splits, parts have deterministic bytes, and every write is create-only.

use std::time::{Duration, SystemTime};

use ferry_client::Client;
use sha2::{Digest, Sha256};

use crate::avro::{self, AvroError, Codec};
use crate::config::Config;
use crate::crash;
use crate::format::{read_part, FormatError};
use crate::hour::{self, Hour};
use crate::manifest::{FileEntry, Intent, Manifest};
use crate::merge::HourMerge;
use crate::metrics::Metrics;
use crate::naming::{self, in_hour, SetDigest, CLOSING, STAGING_DIR, SUCCESS};
use crate::progress::{Progress, ProgressError};
use crate::store::{Created, Output, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Progress(#[from] ProgressError),
    #[error("{path}: {source}")]
    Avro { path: String, source: AvroError },
    #[error("{path}: {source}")]
    Part { path: String, source: FormatError },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: String, reason: String },
    #[error("{path} is listed in the close intent but missing")]
    Missing { path: String },
    #[error("closing hour {hour}, in the scratch space: {source}")]
    Scratch { hour: Hour, source: std::io::Error },
    #[error("reading the watermark: {0}")]
    Watermark(#[from] ferry_client::Error),
}

/// Closes every hour the watermark allows, oldest first; returns how many.
pub async fn close_ready_hours(
    client: &Client,
    output: &Output,
    config: &Config,
    progress: &tokio::sync::Mutex<Progress>,
    metrics: &Metrics,
) -> Result<usize, CloseError> {
    let watermark = watermark(client, &config.subscription).await?;
    let mut progress = progress.lock().await;
    progress.refresh(output).await?;
    progress.ensure_start(output, Hour::of_micros(watermark)).await?;
    let mut closed = 0;
    while let Some(hour) = progress.oldest_open() {
        let due = hour.end_micros().saturating_add(hour::duration_micros(config.grace));
        metrics.set_watermark_lag(watermark.saturating_sub(hour.start_micros()));
        if watermark < due || !quiet(output, config, hour).await? {
            break;
        }
        let manifest = close_hour(output, config, hour).await?;
        metrics.hour_closed(&manifest, watermark.saturating_sub(due));
        progress.closed(hour);
        closed += 1;
    }
    Ok(closed)
}

/// The subscription's watermark (µs on the server's clock): the oldest
/// unacked publish time, or the server's clock when nothing is unacked.
pub async fn watermark(client: &Client, subscription: &str) -> Result<i64, ferry_client::Error> {
    let backlog = client
        .get_subscription(subscription)
        .await?
        .backlog
        .ok_or_else(|| ferry_client::Error::Protocol("GetSubscription returned no backlog".into()))?;
    Ok(hour::micros(backlog.oldest_unacked_publish_time.unwrap_or(backlog.as_of)))
}

/// Whether the hour's newest staging file is at least `quiet` old.
async fn quiet(output: &Output, config: &Config, hour: Hour) -> Result<bool, CloseError> {
    if config.quiet.is_zero() {
        return Ok(true);
    }
    let staged = output.list(&in_hour(&config.topic, hour, STAGING_DIR)).await?;
    let newest = staged.iter().map(|file| file.last_modified).max();
    let age = |time: SystemTime| SystemTime::now().duration_since(time).unwrap_or(Duration::ZERO);
    Ok(newest.is_none_or(|newest| age(newest) >= config.quiet))
}

/// Closes one hour (or finds it closed) and returns its manifest.
pub async fn close_hour(output: &Output, config: &Config, hour: Hour) -> Result<Manifest, CloseError> {
    let topic = &config.topic;
    if let Some(manifest) = read_manifest(output, topic, hour).await? {
        return Ok(manifest);
    }
    let intent = fix_intent(output, config, hour).await?;
    crash::point("intent-written");
    close_as_intended(output, config, hour, &intent).await
}

/// Closes the hour as `intent` fixes it: merges its staging files into
/// parts, writes the manifest and deletes the staging files. Another worker
/// may be doing the same meanwhile, or have finished.
async fn close_as_intended(
    output: &Output,
    config: &Config,
    hour: Hour,
    intent: &Intent,
) -> Result<Manifest, CloseError> {
    let topic = &config.topic;
    let codec = Codec::from_name(&intent.codec).ok_or_else(|| CloseError::Damaged {
        path: in_hour(topic, hour, CLOSING),
        reason: format!("unknown codec {:?}", intent.codec),
    })?;

    let merge = match merge_staged(output, config, hour, intent).await {
        Ok(merge) => merge,
        // Another worker closed the hour meanwhile and deleted the staged
        // files after writing its manifest: the hour is closed.
        Err(CloseError::Missing { path }) => {
            return read_manifest(output, topic, hour).await?.ok_or(CloseError::Missing { path });
        }
        Err(e) => return Err(e),
    };
    let (files, duplicates_dropped, skewed) = write_parts(output, topic, hour, intent, codec, merge).await?;
    let manifest = Manifest {
        topic: topic.clone(),
        hour: hour.to_string(),
        format: intent.format,
        records: files.iter().map(|f| f.records).sum(),
        files,
        duplicates_dropped,
        skewed,
        staging_files: intent.staging.len(),
    };
    let document = serde_json::to_vec_pretty(&manifest).expect("serialisable");
    let manifest = match output.create(&in_hour(topic, hour, SUCCESS), document.into()).await? {
        Created::New => manifest,
        Created::AlreadyThere => read_manifest(output, topic, hour).await?.unwrap_or(manifest),
    };
    crash::point("success-written");
    // The parts hold everything now; the staged copies can go.
    for name in &intent.staging {
        output.delete(&in_hour(topic, hour, &format!("{STAGING_DIR}/{name}"))).await?;
    }
    Ok(manifest)
}

/// Reads the intent's staging files, one at a time, into a merge that holds
/// what fits its memory budget and spills the rest to scratch files.
async fn merge_staged(output: &Output, config: &Config, hour: Hour, intent: &Intent) -> Result<HourMerge, CloseError> {
    let scratch = |source| CloseError::Scratch { hour, source };
    let mut merge = HourMerge::new(&config.scratch_dir, config.close_memory_max).map_err(scratch)?;
    for name in &intent.staging {
        let path = in_hour(&config.topic, hour, &format!("{STAGING_DIR}/{name}"));
        let bytes = output.get(&path).await?.ok_or_else(|| CloseError::Missing { path: path.clone() })?;
        let batch = avro::read_file(&bytes).map_err(|source| CloseError::Avro { path, source })?;
        merge = blocking(move || merge.add(batch).map(|()| merge)).await.map_err(scratch)?;
    }
    if merge.spilled_runs() > 0 {
        tracing::info!(%hour, runs = merge.spilled_runs(), "the hour is over the close's memory budget: sorting on disk");
    }
    Ok(merge)
}

/// Cuts the merged hour into parts on a blocking thread, one at a time, and
/// stores each create-only as it comes; returns the parts, the duplicates
/// dropped and the skewed events.
async fn write_parts(
    output: &Output,
    topic: &str,
    hour: Hour,
    intent: &Intent,
    codec: Codec,
    merge: HourMerge,
) -> Result<(Vec<FileEntry>, u64, u64), CloseError> {
    let scratch = |source| CloseError::Scratch { hour, source };
    let (parts, mut made) = tokio::sync::mpsc::channel::<Part>(1);
    let (format, limits) = (intent.format, (intent.part_events_max, intent.part_bytes_max));
    let making = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, u64)> {
        let mut events = merge.finish()?;
        loop {
            let part = events.next_part(limits.0, limits.1)?;
            if part.is_empty() {
                return Ok((events.duplicates, events.skewed));
            }
            let marker = SetDigest::of(hour, part.iter().map(|e| (e.partition, e.offset))).sync_marker();
            let made = Part { bytes: format.write(&part, codec, marker), records: part.len() as u64 };
            if parts.blocking_send(made).is_err() {
                // The close failed on the other side; it reports why.
                return Ok((events.duplicates, events.skewed));
            }
        }
    });
    let mut files = Vec::new();
    while let Some(Part { bytes, records }) = made.recv().await {
        let name = naming::part_name(files.len(), format.extension(codec));
        let path = in_hour(topic, hour, &name);
        // A crashed close may have written this part already: describe what is stored.
        let (stored, records) = match output.create(&path, bytes.clone().into()).await? {
            Created::New => (bytes, records),
            Created::AlreadyThere => {
                let stored = output.get(&path).await?.ok_or_else(|| CloseError::Missing { path: path.clone() })?;
                let records = read_part(&name, &stored).map_err(|source| CloseError::Part { path, source })?.len();
                (stored.to_vec(), records as u64)
            }
        };
        files.push(FileEntry { name, records, bytes: stored.len() as u64, sha256: sha256_hex(&stored) });
        crash::point("part-written");
    }
    let (duplicates, skewed) = making.await.map_err(|e| scratch(std::io::Error::other(e)))?.map_err(scratch)?;
    Ok((files, duplicates, skewed))
}

/// One part's bytes, made on the blocking side of a close.
struct Part {
    bytes: Vec<u8>,
    records: u64,
}

/// Runs CPU- and disk-bound work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(std::io::Error::other)?
}

/// The hour's close intent: the one already written, else one naming the
/// staging files there now (create-only, so all closers end up with one).
pub async fn fix_intent(output: &Output, config: &Config, hour: Hour) -> Result<Intent, CloseError> {
    let path = in_hour(&config.topic, hour, CLOSING);
    if let Some(intent) = read_intent(output, &config.topic, hour).await? {
        return Ok(intent);
    }
    let staged = output.list(&in_hour(&config.topic, hour, STAGING_DIR)).await?;
    let intent = Intent {
        hour: hour.to_string(),
        staging: staged.into_iter().map(|file| file.name).filter(|name| name.ends_with(".avro")).collect(),
        codec: config.codec.name().to_owned(),
        format: config.format,
        part_events_max: config.part_events_max,
        part_bytes_max: config.part_bytes_max,
    };
    let document = serde_json::to_vec_pretty(&intent).expect("serialisable");
    match output.create(&path, document.into()).await? {
        Created::New => Ok(intent),
        Created::AlreadyThere => read_intent(output, &config.topic, hour).await?.ok_or(CloseError::Missing { path }),
    }
}

pub async fn read_intent(output: &Output, topic: &str, hour: Hour) -> Result<Option<Intent>, CloseError> {
    read_json(output, &in_hour(topic, hour, CLOSING)).await
}

pub async fn read_manifest(output: &Output, topic: &str, hour: Hour) -> Result<Option<Manifest>, CloseError> {
    read_json(output, &in_hour(topic, hour, SUCCESS)).await
}

async fn read_json<T: serde::de::DeserializeOwned>(output: &Output, path: &str) -> Result<Option<T>, CloseError> {
    let Some(bytes) = output.get(path).await? else { return Ok(None) };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| CloseError::Damaged { path: path.to_owned(), reason: e.to_string() })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    naming::hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;
    use crate::envelope::Envelope;

    /// One hour of a topic in a real local store, with two staging files
    /// (as two workers would leave them).
    async fn staged_hour(dir: &std::path::Path) -> (Output, Config, Hour) {
        let output = Output::open(&format!("file://{}", dir.display()), &[]).expect("opens");
        let mut config = Config::new("clicks", "etl");
        config.scratch_dir = dir.to_path_buf();
        let hour = Hour::of_micros(1_800_000_000_000_000);
        for partition in [0, 1] {
            let events: Vec<Envelope> = (0..3)
                .map(|offset| Envelope {
                    event_id: Envelope::message_id("clicks", partition, offset),
                    publish_time_micros: hour.start_micros() + 1,
                    topic: "clicks".into(),
                    partition,
                    offset,
                    attributes: BTreeMap::new(),
                    payload: Bytes::from(vec![b'x'; 8]),
                    skewed: false,
                })
                .collect();
            let digest = SetDigest::of(hour, events.iter().map(|e| (e.partition, e.offset)));
            let bytes = avro::write_file(&events, config.codec, digest.sync_marker());
            let path = naming::staging_path(&config.topic, hour, &digest);
            assert_eq!(output.create(&path, bytes.into()).await.expect("stage"), Created::New);
        }
        (output, config, hour)
    }

    /// Two workers close the same hour: B reads the intent, then A closes
    /// the hour whole (parts, manifest, staging files deleted) before B
    /// reads the staging files. B finds them gone and reports A's close,
    /// not an error (the worker exited on it once, in CI).
    #[tokio::test]
    async fn a_close_that_finds_the_staging_files_gone_returns_the_other_workers_manifest() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (output, config, hour) = staged_hour(dir.path()).await;
        let intent_read_by_b = fix_intent(&output, &config, hour).await.expect("intent");
        assert_eq!(intent_read_by_b.staging.len(), 2);

        let closed_by_a = close_hour(&output, &config, hour).await.expect("A closes the hour");
        assert_eq!(closed_by_a.records, 6);
        assert!(output.list(&in_hour(&config.topic, hour, STAGING_DIR)).await.expect("list").is_empty());

        let closed_by_b = close_as_intended(&output, &config, hour, &intent_read_by_b).await.expect("B's close");
        assert_eq!(closed_by_b, closed_by_a);
    }

    /// A staging file the intent names that is gone while no manifest says
    /// the hour is closed is damage, and the close says which file.
    #[tokio::test]
    async fn a_staging_file_gone_from_an_unclosed_hour_is_reported_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (output, config, hour) = staged_hour(dir.path()).await;
        let intent = fix_intent(&output, &config, hour).await.expect("intent");
        let lost = in_hour(&config.topic, hour, &format!("{STAGING_DIR}/{}", intent.staging[1]));
        output.delete(&lost).await.expect("delete");

        match close_hour(&output, &config, hour).await {
            Err(CloseError::Missing { path }) => assert_eq!(path, lost),
            other => panic!("expected the missing staging file, got {other:?}"),
        }
        assert_eq!(read_manifest(&output, &config.topic, hour).await.expect("read"), None);
    }
}
