//! The formats a closed hour's parts are written in. Staging files are
//! always Avro (they are the ETL's own, read back at close); the parts,
//! which downstream jobs read, are Avro by default or JSON Lines.

use serde::{Deserialize, Serialize};

use crate::avro::{self, AvroError, Codec};
use crate::envelope::Envelope;
use crate::jsonl::{self, JsonLinesError};

/// How much a JSON Lines part may expand to when read back: well over what
/// the part limits let the writer make.
const JSON_LINES_READ_LIMIT: usize = 4 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Avro object container files, the codec per block.
    #[default]
    Avro,
    /// JSON Lines, the whole file gzip (`deflate`) or zstd compressed, or not.
    JsonLines,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error(transparent)]
    Avro(#[from] AvroError),
    #[error(transparent)]
    JsonLines(#[from] JsonLinesError),
    #[error("not a part name the ETL writes (part-NNNNN.avro, .jsonl, .jsonl.gz, .jsonl.zst)")]
    UnknownName,
}

impl Format {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avro => "avro",
            Self::JsonLines => "jsonl",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Avro, Self::JsonLines].into_iter().find(|format| format.name() == name)
    }

    /// The file name extension of a part.
    pub fn extension(self, codec: Codec) -> &'static str {
        match self {
            Self::Avro => "avro",
            Self::JsonLines => jsonl::extension(codec),
        }
    }

    /// A part's bytes: a pure function of the events, the codec and (for
    /// Avro) the sync marker.
    pub fn write(self, events: &[Envelope], codec: Codec, marker: [u8; 16]) -> Vec<u8> {
        match self {
            Self::Avro => avro::write_file(events, codec, marker),
            Self::JsonLines => jsonl::write_file(events, codec),
        }
    }
}

/// Every event of a part, read as its name says it was written.
pub fn read_part(name: &str, bytes: &[u8]) -> Result<Vec<Envelope>, FormatError> {
    if name.ends_with(".avro") {
        return Ok(avro::read_file(bytes)?);
    }
    let codec = jsonl::codec_of(name).ok_or(FormatError::UnknownName)?;
    Ok(jsonl::read_file(bytes, codec, JSON_LINES_READ_LIMIT)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_read_as_their_names_say() {
        let event = Envelope {
            event_id: "e".into(),
            publish_time_micros: 7,
            topic: "t".into(),
            partition: 0,
            offset: 1,
            attributes: Default::default(),
            payload: bytes::Bytes::from_static(b"x"),
            skewed: false,
        };
        for format in [Format::Avro, Format::JsonLines] {
            for codec in [Codec::Null, Codec::Deflate, Codec::Zstandard] {
                let bytes = format.write(std::slice::from_ref(&event), codec, [7; 16]);
                let name = format!("part-00000.{}", format.extension(codec));
                assert_eq!(read_part(&name, &bytes), Ok(vec![event.clone()]), "{name}");
            }
        }
        assert_eq!(read_part("part-00000.csv", b""), Err(FormatError::UnknownName));
    }
}
