//! Reading back what [`super::write_file`] wrote (and any container file of
//! the same schema with the codecs the ETL knows).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{AvroError, Codec, MAGIC};
use crate::envelope::{Envelope, SCHEMA};

/// A block's decompressed size, at most: well over what the writer makes,
/// and a bound on what a damaged file can make a reader allocate.
const BLOCK_BYTES_LIMIT: usize = 256 << 20;

/// Every event of a container file, in order.
pub fn read_file(file: &[u8]) -> Result<Vec<Envelope>, AvroError> {
    let mut input = Input { rest: file };
    if input.take(4)? != MAGIC {
        return Err(corrupt("no Avro magic at the start"));
    }
    let metadata = input.metadata()?;
    let codec_name = metadata.get("avro.codec").map_or("null", |c| c.as_str());
    let codec = Codec::from_name(codec_name).ok_or_else(|| AvroError::UnknownCodec(codec_name.to_owned()))?;
    let schema = metadata.get("avro.schema").ok_or_else(|| corrupt("no avro.schema"))?;
    if !same_fields(schema) {
        return Err(corrupt("written with another schema"));
    }
    let marker = input.take(16)?.to_vec();
    let mut events = Vec::new();
    while !input.rest.is_empty() {
        let count = input.count()?;
        let size = input.count()?;
        let block = codec.decompress(input.take(size)?, BLOCK_BYTES_LIMIT)?;
        if input.take(16)? != marker.as_slice() {
            return Err(corrupt("a block's sync marker is not the file's"));
        }
        let mut block = Input { rest: &block };
        for _ in 0..count {
            events.push(block.event()?);
        }
        if !block.rest.is_empty() {
            return Err(corrupt("a block holds more than its count says"));
        }
    }
    Ok(events)
}

/// One bare event at the start of `input`, which moves past it.
pub(super) fn event(input: &mut &[u8]) -> Result<Envelope, AvroError> {
    let mut reader = Input { rest: input };
    let event = reader.event()?;
    *input = reader.rest;
    Ok(event)
}

struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AvroError> {
        if n > self.rest.len() {
            return Err(corrupt("cut short"));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn long(&mut self) -> Result<i64, AvroError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(corrupt("a varint longer than 64 bits"))
    }

    /// A length or count: a long that must not be negative.
    fn count(&mut self) -> Result<usize, AvroError> {
        usize::try_from(self.long()?).map_err(|_| corrupt("a negative length"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], AvroError> {
        let n = self.count()?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, AvroError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| corrupt("a string is not UTF-8"))
    }

    /// A map: blocks of entries ended by an empty one; a negative count is
    /// followed by the block's byte size (which we do not need).
    fn map(&mut self, mut entry: impl FnMut(&mut Self) -> Result<(), AvroError>) -> Result<(), AvroError> {
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.long()?;
            }
            for _ in 0..count.unsigned_abs() {
                entry(self)?;
            }
        }
    }

    fn metadata(&mut self) -> Result<BTreeMap<String, String>, AvroError> {
        let mut metadata = BTreeMap::new();
        self.map(|input| {
            let key = input.string()?;
            let value = input.string()?;
            metadata.insert(key, value);
            Ok(())
        })?;
        Ok(metadata)
    }

    fn event(&mut self) -> Result<Envelope, AvroError> {
        let event_id = self.string()?;
        let publish_time_micros = self.long()?;
        let topic = self.string()?;
        let partition = u32::try_from(self.long()?).map_err(|_| corrupt("a partition out of range"))?;
        let offset = u64::try_from(self.long()?).map_err(|_| corrupt("a negative offset"))?;
        let mut attributes = BTreeMap::new();
        self.map(|input| {
            let key = input.string()?;
            attributes.insert(key, input.string()?);
            Ok(())
        })?;
        let payload = Bytes::copy_from_slice(self.bytes()?);
        let skewed = match self.take(1)?[0] {
            0 => false,
            1 => true,
            _ => return Err(corrupt("a boolean that is neither 0 nor 1")),
        };
        Ok(Envelope { event_id, publish_time_micros, topic, partition, offset, attributes, payload, skewed })
    }
}

/// Whether a schema has the envelope's fields, in order (writers may
/// reformat a schema and drop its docs, so the text is not compared).
fn same_fields(schema: &str) -> bool {
    let names = |text: &str| -> Option<Vec<String>> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let fields = value.get("fields")?.as_array()?;
        fields.iter().map(|f| f.get("name")?.as_str().map(str::to_owned)).collect()
    };
    names(schema).is_some_and(|found| Some(found) == names(SCHEMA))
}

fn corrupt(reason: &str) -> AvroError {
    AvroError::Corrupt(reason.to_owned())
}
