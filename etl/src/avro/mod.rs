//! Avro object container files of [`Envelope`]s, written and read by hand
//! for the one schema the ETL has.
//!
//! Not through the `apache-avro` crate, for two reasons: its writer puts the
//! header's metadata (and any map) in `HashMap` order, so equal contents
//! would not give equal bytes, which exactly-once naming relies on; and the
//! fixed schema lets events go straight from the envelope into the block
//! buffer, without a generic value per field. The tests read what this
//! writes with `apache-avro`, and the other way round.
//!
//! The bytes are a pure function of the events, the codec and the sync
//! marker, for a given build (another version of a compression library may
//! compress differently; the first file written under a name wins anyway).

mod decode;
mod encode;
#[cfg(test)]
mod tests;

use std::io::{Read, Write};

use crate::envelope::{Envelope, SCHEMA};

pub use decode::read_file;

const MAGIC: &[u8; 4] = b"Obj\x01";
/// A block is closed at this many events or this many encoded bytes,
/// whichever comes first (the spec leaves it to the writer; these keep a
/// reader's memory per block small).
const BLOCK_EVENTS_MAX: usize = 10_000;
const BLOCK_BYTES_MAX: usize = 1 << 20;
/// Compression levels: fixed, since they change the bytes.
const DEFLATE_LEVEL: u32 = 6;
const ZSTD_LEVEL: i32 = 3;

/// The block codecs of the Avro spec the ETL writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    Null,
    Deflate,
    #[default]
    Zstandard,
}

impl Codec {
    /// The name in a file's `avro.codec` metadata, and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Deflate => "deflate",
            Self::Zstandard => "zstandard",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Null, Self::Deflate, Self::Zstandard]
            .into_iter()
            .find(|c| c.name() == name || (name == "zstd" && *c == Self::Zstandard))
    }

    fn compress(self, raw: Vec<u8>) -> Vec<u8> {
        match self {
            Self::Null => raw,
            Self::Deflate => {
                let mut encoder =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(DEFLATE_LEVEL));
                encoder.write_all(&raw).expect("writing to a Vec cannot fail");
                encoder.finish().expect("writing to a Vec cannot fail")
            }
            Self::Zstandard => zstd_compress(&raw),
        }
    }

    /// Decompresses a block, refusing to expand it past `limit` bytes.
    fn decompress(self, block: &[u8], limit: usize) -> Result<Vec<u8>, AvroError> {
        let out = match self {
            Self::Null => block.to_vec(),
            Self::Deflate => {
                let mut out = Vec::new();
                let decoder = flate2::read::DeflateDecoder::new(block);
                decoder.take(limit as u64 + 1).read_to_end(&mut out).map_err(|e| AvroError::Corrupt(e.to_string()))?;
                out
            }
            Self::Zstandard => zstd_decompress(block, limit)?,
        };
        if out.len() > limit {
            return Err(AvroError::Corrupt(format!("a block expands past {limit} bytes")));
        }
        Ok(out)
    }
}

/// One zstd frame at the ETL's fixed level (Avro blocks and JSON Lines files).
pub(crate) fn zstd_compress(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(raw.len()));
    zstd_safe::compress(&mut out, raw, ZSTD_LEVEL).expect("a large enough buffer");
    out
}

/// Streaming, since other writers' frames need not say their size; stops
/// once the output passes `limit`.
pub(crate) fn zstd_decompress(block: &[u8], limit: usize) -> Result<Vec<u8>, AvroError> {
    let zstd_error = |code| AvroError::Corrupt(format!("zstd: {}", zstd_safe::get_error_name(code)));
    let mut context = zstd_safe::DCtx::create();
    let mut input = zstd_safe::InBuffer::around(block);
    let mut chunk = vec![0; zstd_safe::DCtx::out_size()];
    let mut out = Vec::new();
    loop {
        let mut output = zstd_safe::OutBuffer::around(&mut chunk[..]);
        let remaining = context.decompress_stream(&mut output, &mut input).map_err(zstd_error)?;
        let produced = output.pos();
        out.extend_from_slice(&chunk[..produced]);
        if out.len() > limit {
            return Err(AvroError::Corrupt(format!("a block expands past {limit} bytes")));
        }
        // A block may hold several frames back to back.
        if remaining == 0 && input.pos == block.len() {
            return Ok(out);
        }
        if input.pos == block.len() && produced == 0 {
            return Err(AvroError::Corrupt("zstd: the block ends inside a frame".into()));
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AvroError {
    #[error("not a Ferry ETL Avro file: {0}")]
    Corrupt(String),
    #[error("Avro codec {0:?} is not one the ETL reads (null, deflate, zstandard)")]
    UnknownCodec(String),
}

/// One event in Avro binary encoding, outside any container (the close's
/// spill files hold events this way).
pub fn encode_event(event: &Envelope, out: &mut Vec<u8>) {
    encode::event(event, out);
}

/// The event [`encode_event`] wrote at the start of `input`; `input` moves past it.
pub fn decode_event(input: &mut &[u8]) -> Result<Envelope, AvroError> {
    decode::event(input)
}

/// One container file holding `events`, in order.
pub fn write_file(events: &[Envelope], codec: Codec, marker: [u8; 16]) -> Vec<u8> {
    let mut file = header(codec, marker);
    for block in crate::merge::split(events, BLOCK_EVENTS_MAX, BLOCK_BYTES_MAX) {
        let mut raw = Vec::new();
        for event in block {
            encode::event(event, &mut raw);
        }
        let data = codec.compress(raw);
        encode::long(block.len() as i64, &mut file);
        encode::long(data.len() as i64, &mut file);
        file.extend_from_slice(&data);
        file.extend_from_slice(&marker);
    }
    file
}

/// The header: magic, metadata in key order, sync marker.
fn header(codec: Codec, marker: [u8; 16]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    // Already in key order: "avro.codec" < "avro.schema".
    let metadata: [(&str, &[u8]); 2] = [("avro.codec", codec.name().as_bytes()), ("avro.schema", SCHEMA.as_bytes())];
    encode::long(metadata.len() as i64, &mut out);
    for (key, value) in metadata {
        encode::bytes(key.as_bytes(), &mut out);
        encode::bytes(value, &mut out);
    }
    encode::long(0, &mut out);
    out.extend_from_slice(&marker);
    out
}
