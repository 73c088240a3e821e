//! Ack ids: opaque strings naming one delivery of one message to one
//! subscription.
//!
//! Layout (before URL-safe base64 without padding): format version u8 (2),
//! then subscription id, partition, offset and delivery id as varints, then
//! a CRC-32 of everything before it (u32 big-endian) — so a mangled id is
//! reported as malformed rather than acking something else. Varints make a
//! typical id 20 characters against version 1's 44 (fixed-width fields):
//! every message carries one out and back, and encoding, sending and
//! decoding them was a tenth of a node's CPU in a drain. Version 1 ids are
//! still read, so acks of deliveries made before an upgrade count.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use prost::encoding::{decode_varint, encode_varint};

const VERSION: u8 = 2;
const CRC_LEN: usize = 4;
/// The longest version 2 id: four varints of up to 10 bytes.
const LEN_MAX: usize = 1 + 4 * 10 + CRC_LEN;
/// Version 1: fixed-width fields, big-endian.
const V1: u8 = 1;
const V1_LEN: usize = 1 + 8 + 4 + 8 + 8 + CRC_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AckId {
    pub subscription_id: u64,
    pub partition: u32,
    pub offset: u64,
    /// Unique per delivery: a redelivery gets a new one, so an ack of the old
    /// delivery can be told apart.
    pub delivery_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not an ack id issued by this server")]
pub struct MalformedAckId;

impl AckId {
    pub fn encode(&self) -> String {
        let mut buffer = [0u8; LEN_MAX];
        let mut rest = &mut buffer[1..];
        for field in [self.subscription_id, u64::from(self.partition), self.offset, self.delivery_id] {
            encode_varint(field, &mut rest);
        }
        // The version byte and the varints written.
        let body_len = LEN_MAX - rest.len();
        buffer[0] = VERSION;
        let crc = crc32fast::hash(&buffer[..body_len]);
        buffer[body_len..body_len + CRC_LEN].copy_from_slice(&crc.to_be_bytes());
        URL_SAFE_NO_PAD.encode(&buffer[..body_len + CRC_LEN])
    }

    pub fn decode(text: &str) -> Result<Self, MalformedAckId> {
        let mut buffer = [0u8; LEN_MAX];
        // Longer text than the longest id is refused before decoding it.
        if text.len() > (LEN_MAX * 4).div_ceil(3) {
            return Err(MalformedAckId);
        }
        let len = URL_SAFE_NO_PAD.decode_slice(text, &mut buffer).map_err(|_| MalformedAckId)?;
        let body_len = len.checked_sub(CRC_LEN).ok_or(MalformedAckId)?;
        let (body, crc) = buffer[..len].split_at(body_len);
        if crc32fast::hash(body).to_be_bytes() != crc {
            return Err(MalformedAckId);
        }
        match body.first() {
            Some(&VERSION) => Self::decode_fields(&body[1..]),
            Some(&V1) if len == V1_LEN => Self::decode_v1(body),
            _ => Err(MalformedAckId),
        }
    }

    fn decode_fields(mut fields: &[u8]) -> Result<Self, MalformedAckId> {
        let mut next = || decode_varint(&mut fields).map_err(|_| MalformedAckId);
        let id = Self {
            subscription_id: next()?,
            partition: u32::try_from(next()?).map_err(|_| MalformedAckId)?,
            offset: next()?,
            delivery_id: next()?,
        };
        if !fields.is_empty() {
            return Err(MalformedAckId);
        }
        Ok(id)
    }

    fn decode_v1(body: &[u8]) -> Result<Self, MalformedAckId> {
        let u64_at = |at: usize| body[at..at + 8].try_into().map(u64::from_be_bytes).map_err(|_| MalformedAckId);
        Ok(Self {
            subscription_id: u64_at(1)?,
            partition: body[9..13].try_into().map(u32::from_be_bytes).map_err(|_| MalformedAckId)?,
            offset: u64_at(13)?,
            delivery_id: u64_at(21)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn ack_ids_round_trip(s in any::<u64>(), p in any::<u32>(), o in any::<u64>(), d in any::<u64>()) {
            let id = AckId { subscription_id: s, partition: p, offset: o, delivery_id: d };
            prop_assert_eq!(AckId::decode(&id.encode()), Ok(id));
        }

        #[test]
        fn any_changed_character_is_detected(position in 0usize..40, replacement in "[A-Za-z0-9_-]") {
            let text = AckId { subscription_id: 1, partition: 2, offset: 3, delivery_id: 4 }.encode();
            let mut chars: Vec<char> = text.chars().collect();
            let position = position % chars.len();
            let new = replacement.chars().next().unwrap_or('A');
            prop_assume!(chars[position] != new);
            chars[position] = new;
            let mangled: String = chars.into_iter().collect();
            // Either it fails to decode, or (for changes in the final padding bits) decodes unchanged.
            if let Ok(decoded) = AckId::decode(&mangled) {
                prop_assert_eq!(decoded, AckId { subscription_id: 1, partition: 2, offset: 3, delivery_id: 4 });
            }
        }
    }

    /// Version 1's layout, as servers before version 2 wrote it.
    fn encode_v1(id: &AckId) -> String {
        let mut bytes = vec![V1];
        bytes.extend_from_slice(&id.subscription_id.to_be_bytes());
        bytes.extend_from_slice(&id.partition.to_be_bytes());
        bytes.extend_from_slice(&id.offset.to_be_bytes());
        bytes.extend_from_slice(&id.delivery_id.to_be_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn ids_issued_before_the_upgrade_still_decode() {
        let id = AckId { subscription_id: 3, partition: 1, offset: 1 << 40, delivery_id: 77 };
        let old = encode_v1(&id);
        assert_eq!(old.len(), 44);
        assert_eq!(AckId::decode(&old), Ok(id));
    }

    #[test]
    fn a_typical_id_is_twenty_characters() {
        let id = AckId { subscription_id: 12, partition: 3, offset: 9_000_000, delivery_id: 5_000_000 };
        assert_eq!(id.encode().len(), 20);
    }

    #[test]
    fn garbage_is_malformed() {
        for text in ["", "abc", "!!!!", &"A".repeat(44), &"A".repeat(61), &"A".repeat(4000)] {
            assert_eq!(AckId::decode(text), Err(MalformedAckId), "{text:?}");
        }
    }
}
