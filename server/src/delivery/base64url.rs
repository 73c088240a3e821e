//! URL-safe base64 without padding, for sizes fixed at compile time in whole
//! 3-byte groups (so whole 4-character groups, and no spare bits): the text
//! of ack ids.
//!
//! The text is the `base64` crate's `URL_SAFE_NO_PAD` (a test holds them
//! equal), so a node of one Ferry release decodes the ids another issued.
//! It is written here because that crate's engine handles any length: in a
//! one-node drain (128 B) its frames were 8.1% of ferryd's CPU, all on ack
//! ids. With these fixed sizes, ack-id work as a whole (base64, CRC, the
//! String) fell from 10.3% to 7.9%.

pub(super) const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Not a character of the alphabet.
const NOT_BASE64: u8 = u8::MAX;

/// Each byte's value in the alphabet, or `NOT_BASE64`.
const VALUES: [u8; 256] = {
    let mut values = [NOT_BASE64; 256];
    let mut value = 0;
    while value < ALPHABET.len() {
        values[ALPHABET[value] as usize] = value as u8;
        value += 1;
    }
    values
};

/// `N` bytes as `T` characters (`T` = `N` / 3 × 4).
pub fn encode<const N: usize, const T: usize>(bytes: &[u8; N]) -> String {
    const { assert!(N.is_multiple_of(3) && T == N / 3 * 4) };
    let mut text = [0u8; T];
    for (group, chars) in bytes.chunks_exact(3).zip(text.chunks_exact_mut(4)) {
        let word = u32::from_be_bytes([0, group[0], group[1], group[2]]);
        for (i, char) in chars.iter_mut().enumerate() {
            *char = ALPHABET[(word >> (18 - 6 * i) & 63) as usize];
        }
    }
    String::from_utf8(text.to_vec()).expect("the alphabet is ASCII")
}

/// `T` characters as `N` bytes (`N` = `T` / 4 × 3); `None` if any is not
/// in the alphabet.
pub fn decode<const T: usize, const N: usize>(text: &[u8; T]) -> Option<[u8; N]> {
    const { assert!(T.is_multiple_of(4) && N == T / 4 * 3) };
    let mut bytes = [0u8; N];
    // Checked once at the end, not per character: a value of the alphabet is
    // below 64, so any `NOT_BASE64` leaves its high bit in `seen`.
    let mut seen = 0u8;
    for (chars, group) in text.chunks_exact(4).zip(bytes.chunks_exact_mut(3)) {
        let mut word = 0u32;
        for &char in chars {
            let value = VALUES[usize::from(char)];
            seen |= value;
            word = word << 6 | u32::from(value & 63);
        }
        group.copy_from_slice(&word.to_be_bytes()[1..]);
    }
    (seen < 64).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn the_text_is_the_base64_crates_url_safe_without_padding(bytes in any::<[u8; 33]>()) {
            let text = encode::<33, 44>(&bytes);
            prop_assert_eq!(&text, &URL_SAFE_NO_PAD.encode(bytes));
            let text: [u8; 44] = text.as_bytes().try_into().expect("44 characters");
            prop_assert_eq!(decode::<44, 33>(&text), Some(bytes));
        }
    }

    #[test]
    fn every_byte_in_every_place_decodes_as_the_base64_crate_decodes_it() {
        for byte in 0..=u8::MAX {
            for at in 0..4 {
                let mut text = *b"AAAA";
                text[at] = byte;
                let ours = decode::<4, 3>(&text).map(Vec::from);
                assert_eq!(ours, URL_SAFE_NO_PAD.decode(text).ok(), "{byte:#04x} at {at}");
            }
        }
    }
}
