//! What a Publish request asks for, checked before anything is proposed: its
//! messages (decompressed), the partition it names and the producer behind it.

use ferry_proto::compression;
use ferry_proto::v1 as api;
use prost::Message as _;

use super::convert;
use super::status::ApiError;
use crate::domain::limits::GRPC_MESSAGE_BYTES_MAX;
use crate::domain::{validate, MessageBody, ProducerSequence};

/// A Publish request, validated against its topic.
#[derive(Debug)]
pub struct PublishInput {
    pub bodies: Vec<MessageBody>,
    /// The partition the request named, if any.
    pub partition: Option<u32>,
    pub producer: Option<ProducerSequence>,
}

pub use ferry_proto::partition_of_key;

impl PublishInput {
    pub fn parse(request: api::PublishRequest, partitions: u32, max_message_bytes: u32) -> Result<Self, ApiError> {
        let producer = (request.producer_id != 0).then_some(ProducerSequence {
            producer_id: request.producer_id,
            first_sequence: request.sequence,
            skip_from: request.skip_from,
        });
        if producer.is_some() && request.partition.is_none() {
            return Err(ApiError::invalid("partition", "is required when producer_id is set"));
        }
        if let Some(skip_from) = request.skip_from {
            if producer.is_none() {
                return Err(ApiError::invalid("skip_from", "is only meaningful with producer_id"));
            }
            if skip_from > request.sequence {
                let problem = format!(
                    "{skip_from} is above the batch's sequence {}: a skip ends where the batch starts",
                    request.sequence
                );
                return Err(ApiError::invalid("skip_from", problem));
            }
        }
        if let Some(partition) = request.partition {
            if partition >= partitions {
                let problem = format!("{partition} is out of range: the topic has {partitions} partitions");
                return Err(ApiError::invalid("partition", problem));
            }
        }
        let messages = messages(request.compression, request.messages, &request.compressed_messages)?;
        let bodies: Vec<MessageBody> = messages.into_iter().map(convert::message_body).collect();
        validate::batch(&bodies, max_message_bytes)?;
        if let Some(partition) = request.partition {
            for (i, body) in bodies.iter().enumerate().filter(|(_, b)| !b.ordering_key.is_empty()) {
                let keyed = partition_of_key(&body.ordering_key, partitions);
                if keyed != partition {
                    let problem = format!("maps to partition {keyed}, not to the request's partition {partition}");
                    return Err(ApiError::invalid(format!("messages[{i}].ordering_key"), problem));
                }
            }
        }
        Ok(Self { bodies, partition: request.partition, producer })
    }
}

/// The request's messages, decompressed when they came compressed.
fn messages(codec: i32, plain: Vec<api::Message>, compressed: &[u8]) -> Result<Vec<api::Message>, ApiError> {
    let codec = api::Compression::try_from(codec).map_err(|_| {
        ApiError::invalid("compression", format!("{codec} is not a codec: 0 = none, 1 = zstd, 2 = lz4"))
    })?;
    if codec == api::Compression::None {
        if !compressed.is_empty() {
            return Err(ApiError::invalid("compressed_messages", "must be empty when compression is NONE"));
        }
        return Ok(plain);
    }
    if !plain.is_empty() {
        return Err(ApiError::invalid("messages", "must be empty when compression is set"));
    }
    let raw = compression::decompress(codec, compressed, GRPC_MESSAGE_BYTES_MAX)
        .map_err(|e| ApiError::invalid("compressed_messages", e.to_string()))?;
    let list = api::MessageList::decode(raw.as_slice())
        .map_err(|e| ApiError::invalid("compressed_messages", format!("does not hold a MessageList: {e}")))?;
    Ok(list.messages)
}
