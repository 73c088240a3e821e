//! Avro binary encoding of the envelope's fields (zig-zag varints,
//! length-prefixed strings and bytes, maps as one block in key order).

use crate::envelope::Envelope;

/// An event's fields in the schema's order.
pub(super) fn event(event: &Envelope, out: &mut Vec<u8>) {
    bytes(event.event_id.as_bytes(), out);
    long(event.publish_time_micros, out);
    bytes(event.topic.as_bytes(), out);
    long(i64::from(event.partition), out);
    long(event.offset as i64, out);
    // A map is blocks of entries ended by an empty one; one block will do,
    // and a `BTreeMap` gives its keys in order, so the bytes are stable.
    if !event.attributes.is_empty() {
        long(event.attributes.len() as i64, out);
        for (key, value) in &event.attributes {
            bytes(key.as_bytes(), out);
            bytes(value.as_bytes(), out);
        }
    }
    long(0, out);
    bytes(&event.payload, out);
    out.push(u8::from(event.skewed));
}

/// `int` and `long` alike: zig-zag, then 7 bits a byte, low bits first.
pub(super) fn long(value: i64, out: &mut Vec<u8>) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// `string` and `bytes` alike: length, then the bytes.
pub(super) fn bytes(value: &[u8], out: &mut Vec<u8>) {
    long(value.len() as i64, out);
    out.extend_from_slice(value);
}
