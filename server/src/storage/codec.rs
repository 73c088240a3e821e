//! Value framing: every stored value is one format-version byte followed by a
//! protobuf message of `ferry.internal.v1`.

use bytes::Bytes;
use prost::Message;

/// The framing version of stored values.
pub const VALUE_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty value where a {0} was expected")]
    Empty(&'static str),
    #[error("{what} has format version {version}; this build reads version {VALUE_VERSION}")]
    Version { what: &'static str, version: u8 },
    #[error("cannot decode a {what}")]
    Decode {
        what: &'static str,
        #[source]
        source: prost::DecodeError,
    },
    #[error("{0} is missing a required field")]
    Missing(&'static str),
    /// Written by a newer version (an update of a setting this one lacks).
    #[error("an update names setting {0:?}, which this version does not know")]
    UnknownSetting(String),
}

pub fn encode<M: Message>(message: &M) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + message.encoded_len());
    buf.push(VALUE_VERSION);
    message.encode_raw(&mut buf);
    buf
}

/// Decodes a framed value. `bytes` fields of the result share `value`'s buffer.
pub fn decode<M: Message + Default>(what: &'static str, value: Bytes) -> Result<M, CodecError> {
    unframe(what, &value)?;
    M::decode(value.slice(1..)).map_err(|source| CodecError::Decode { what, source })
}

/// Decodes a framed value held in a borrowed slice, copying only its `bytes`
/// fields (a message without any is decoded with no copy at all).
pub fn decode_slice<M: Message + Default>(what: &'static str, value: &[u8]) -> Result<M, CodecError> {
    M::decode(unframe(what, value)?).map_err(|source| CodecError::Decode { what, source })
}

/// The protobuf message of a framed value, once its version is checked.
pub fn unframe<'a>(what: &'static str, value: &'a [u8]) -> Result<&'a [u8], CodecError> {
    match value.split_first() {
        None => Err(CodecError::Empty(what)),
        Some((&VALUE_VERSION, message)) => Ok(message),
        Some((&version, _)) => Err(CodecError::Version { what, version }),
    }
}

#[cfg(test)]
mod tests {
    use ferry_proto::internal::PartitionRecord;

    use super::*;

    #[test]
    fn values_round_trip_and_reject_other_versions() {
        let record = PartitionRecord {
            start_offset: 1,
            next_offset: 9,
            last_publish_time_unix_micros: -3,
            ..Default::default()
        };
        let bytes = encode(&record);
        assert_eq!(bytes[0], VALUE_VERSION);
        assert_eq!(decode::<PartitionRecord>("partition", Bytes::from(bytes.clone())).ok(), Some(record));
        let mut future = bytes;
        future[0] = 2;
        assert!(matches!(
            decode::<PartitionRecord>("partition", Bytes::from(future)),
            Err(CodecError::Version { version: 2, .. })
        ));
        assert!(matches!(decode::<PartitionRecord>("partition", Bytes::new()), Err(CodecError::Empty(_))));
    }
}
