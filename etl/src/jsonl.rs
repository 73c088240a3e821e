//! JSON Lines parts: one event per line, for readers that prefer text to
//! Avro (BigQuery, `jq`, Spark's `json` source). Fields as in the Avro
//! envelope; `publish_time` is RFC 3339 in UTC with microseconds, `payload`
//! is standard base64 (as BigQuery loads BYTES from JSON).
//!
//! Like the Avro writer, the bytes are a pure function of the events and the
//! codec: fields in a fixed order, attributes in key order, and gzip headers
//! without a time stamp or file name.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::avro::{zstd_compress, zstd_decompress, Codec};
use crate::envelope::Envelope;

/// The gzip level: fixed, since it changes the bytes (zstd's is the Avro writer's).
const GZIP_LEVEL: u32 = 6;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonLinesError {
    #[error("line {line}: {reason}")]
    BadLine { line: usize, reason: String },
    #[error("decompressing: {0}")]
    Compression(String),
}

/// One line, borrowing from the envelope when written.
#[derive(Serialize)]
struct LineOut<'a> {
    event_id: &'a str,
    publish_time: String,
    topic: &'a str,
    partition: u32,
    offset: u64,
    attributes: &'a BTreeMap<String, String>,
    payload: String,
    skewed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn {
    event_id: String,
    publish_time: String,
    topic: String,
    partition: u32,
    offset: u64,
    attributes: BTreeMap<String, String>,
    payload: String,
    skewed: bool,
}

/// The file name extension of a part in this codec.
pub fn extension(codec: Codec) -> &'static str {
    match codec {
        Codec::Null => "jsonl",
        Codec::Deflate => "jsonl.gz",
        Codec::Zstandard => "jsonl.zst",
    }
}

/// The codec a part's name says it was written with.
pub fn codec_of(name: &str) -> Option<Codec> {
    [Codec::Null, Codec::Deflate, Codec::Zstandard]
        .into_iter()
        .find(|codec| name.ends_with(&format!(".{}", extension(*codec))))
}

/// One file holding `events`, in order, compressed as `codec` says.
pub fn write_file(events: &[Envelope], codec: Codec) -> Vec<u8> {
    let mut text = Vec::new();
    for event in events {
        let line = LineOut {
            event_id: &event.event_id,
            publish_time: rfc3339_micros(event.publish_time_micros),
            topic: &event.topic,
            partition: event.partition,
            offset: event.offset,
            attributes: &event.attributes,
            payload: BASE64.encode(&event.payload),
            skewed: event.skewed,
        };
        serde_json::to_writer(&mut text, &line).expect("writing JSON to a Vec cannot fail");
        text.push(b'\n');
    }
    match codec {
        Codec::Null => text,
        Codec::Deflate => {
            // GzBuilder writes mtime 0 and no name unless told: stable bytes.
            let mut encoder = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
            encoder.write_all(&text).expect("writing to a Vec cannot fail");
            encoder.finish().expect("writing to a Vec cannot fail")
        }
        Codec::Zstandard => zstd_compress(&text),
    }
}

/// Every event of a file written in `codec`, refusing to expand it past
/// `limit` bytes.
pub fn read_file(file: &[u8], codec: Codec, limit: usize) -> Result<Vec<Envelope>, JsonLinesError> {
    let text = match codec {
        Codec::Null => file.to_vec(),
        Codec::Deflate => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(file)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| JsonLinesError::Compression(e.to_string()))?;
            out
        }
        Codec::Zstandard => zstd_decompress(file, limit).map_err(|e| JsonLinesError::Compression(e.to_string()))?,
    };
    if text.len() > limit {
        return Err(JsonLinesError::Compression(format!("expands past {limit} bytes")));
    }
    let mut events = Vec::new();
    for (index, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = |reason: String| JsonLinesError::BadLine { line: index + 1, reason };
        let line: LineIn = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
        let publish_time = DateTime::parse_from_rfc3339(&line.publish_time)
            .map_err(|e| bad(format!("publish_time {:?}: {e}", line.publish_time)))?;
        let payload = BASE64.decode(&line.payload).map_err(|e| bad(format!("payload: {e}")))?;
        events.push(Envelope {
            event_id: line.event_id,
            publish_time_micros: publish_time.timestamp_micros(),
            topic: line.topic,
            partition: line.partition,
            offset: line.offset,
            attributes: line.attributes,
            payload: Bytes::from(payload),
            skewed: line.skewed,
        });
    }
    Ok(events)
}

/// `2026-11-22T13:04:05.000123Z`: always six fraction digits, so equal
/// times give equal text.
fn rfc3339_micros(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map_or_else(|| micros.to_string(), |time| time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<Envelope> {
        (0..3u64)
            .map(|i| Envelope {
                event_id: format!("id-{i}"),
                publish_time_micros: 1_795_000_000_000_000 + i as i64 * 1_000_001,
                topic: "clicks".into(),
                partition: 1,
                offset: 40 + i,
                attributes: BTreeMap::from([("z".into(), "last".into()), ("a".into(), format!("\"quoted\" {i}"))]),
                payload: Bytes::from(vec![0, 255, b'\n', i as u8]),
                skewed: i == 2,
            })
            .collect()
    }

    #[test]
    fn every_codec_reads_back_what_it_wrote_with_stable_bytes() {
        for codec in [Codec::Null, Codec::Deflate, Codec::Zstandard] {
            let file = write_file(&events(), codec);
            assert_eq!(file, write_file(&events(), codec), "{codec:?}: equal events, equal bytes");
            assert_eq!(read_file(&file, codec, 1 << 20).expect("readable"), events(), "{codec:?}");
            assert_eq!(codec_of(&format!("part-00000.{}", extension(codec))), Some(codec));
        }
    }

    #[test]
    fn lines_are_plain_json_with_fields_in_schema_order() {
        let text = String::from_utf8(write_file(&events()[..1], Codec::Null)).expect("UTF-8");
        assert_eq!(
            text,
            "{\"event_id\":\"id-0\",\"publish_time\":\"2026-11-18T11:06:40.000000Z\",\"topic\":\"clicks\",\
             \"partition\":1,\"offset\":40,\"attributes\":{\"a\":\"\\\"quoted\\\" 0\",\"z\":\"last\"},\
             \"payload\":\"AP8KAA==\",\"skewed\":false}\n"
        );
    }

    #[test]
    fn gzip_parts_are_plain_gzip_files() {
        let file = write_file(&events(), Codec::Deflate);
        let mut text = String::new();
        flate2::read::GzDecoder::new(&file[..]).read_to_string(&mut text).expect("gunzip");
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn damaged_files_are_refused_naming_the_line() {
        let mut file = write_file(&events(), Codec::Null);
        file.extend_from_slice(b"{\"event_id\": 5}\n");
        assert!(matches!(read_file(&file, Codec::Null, 1 << 20), Err(JsonLinesError::BadLine { line: 4, .. })));
        let zipped = write_file(&events(), Codec::Deflate);
        assert!(read_file(&zipped[..zipped.len() / 2], Codec::Deflate, 1 << 20).is_err());
        assert!(read_file(&zipped, Codec::Deflate, 10).is_err(), "past the limit");
    }
}
