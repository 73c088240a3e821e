//! Messages as producers send them and as the log stores them.

use std::collections::BTreeMap;

use bytes::Bytes;

/// What a producer publishes; the server adds position and publish time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageBody {
    pub data: Bytes,
    pub attributes: BTreeMap<String, String>,
    pub ordering_key: String,
    pub event_id: String,
}

impl MessageBody {
    /// The size that counts against message limits: data plus attributes.
    pub fn size_bytes(&self) -> usize {
        let attributes: usize = self.attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
        self.data.len() + attributes
    }
}

/// A message as stored in a partition's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub partition: u32,
    pub offset: u64,
    pub publish_time_us: i64,
    pub body: MessageBody,
}
