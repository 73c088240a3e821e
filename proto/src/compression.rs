//! Publish-batch compression: the codecs of `ferry.v1.Compression`, shared by
//! the client (which compresses a `MessageList`) and the server (which
//! decompresses it, never past a size bound the caller names).

use crate::v1::Compression;

/// zstd level for batches: fast, and still several times smaller on text.
const ZSTD_LEVEL: i32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    #[error("compressed_messages is not a valid {codec} frame: {reason}")]
    Corrupt { codec: &'static str, reason: String },
    #[error("compressed_messages expands to {size} bytes, more than the limit of {limit}")]
    TooLarge { size: u64, limit: usize },
    #[error("compressed_messages is a zstd frame without a content size")]
    UnknownSize,
    #[error("compression {0:?} has no compressed form")]
    NotACodec(Compression),
}

/// Compresses `raw` with `codec` (zstd frames record their content size;
/// lz4 blocks are prefixed with it, little-endian u32).
pub fn compress(codec: Compression, raw: &[u8]) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => Err(CompressionError::NotACodec(codec)),
        Compression::Lz4 => Ok(lz4_flex::block::compress_prepend_size(raw)),
        Compression::Zstd => {
            let mut out = Vec::with_capacity(zstd_safe::compress_bound(raw.len()));
            zstd_safe::compress(&mut out, raw, ZSTD_LEVEL)
                .map_err(|code| corrupt("zstd", zstd_safe::get_error_name(code)))?;
            Ok(out)
        }
    }
}

/// Decompresses `compressed`, refusing anything that would expand past `limit`
/// bytes before allocating for it.
pub fn decompress(codec: Compression, compressed: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => Err(CompressionError::NotACodec(codec)),
        Compression::Lz4 => {
            let prefix: [u8; 4] = compressed
                .get(..4)
                .and_then(|p| p.try_into().ok())
                .ok_or_else(|| corrupt("lz4", "shorter than its size prefix"))?;
            let size = u32::from_le_bytes(prefix) as usize;
            check_size(size as u64, limit)?;
            lz4_flex::block::decompress(&compressed[4..], size).map_err(|e| corrupt("lz4", &e.to_string()))
        }
        Compression::Zstd => {
            let size = zstd_safe::get_frame_content_size(compressed)
                .map_err(|_| corrupt("zstd", "bad frame header"))?
                .ok_or(CompressionError::UnknownSize)?;
            check_size(size, limit)?;
            let mut out = Vec::with_capacity(size as usize);
            zstd_safe::decompress(&mut out, compressed)
                .map_err(|code| corrupt("zstd", zstd_safe::get_error_name(code)))?;
            Ok(out)
        }
    }
}

fn check_size(size: u64, limit: usize) -> Result<(), CompressionError> {
    if size > limit as u64 {
        return Err(CompressionError::TooLarge { size, limit });
    }
    Ok(())
}

fn corrupt(codec: &'static str, reason: &str) -> CompressionError {
    CompressionError::Corrupt { codec, reason: reason.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_shrinks_repetitive_data() {
        let raw: Vec<u8> = b"{\"event\":\"play\",\"track\":12345}\n".repeat(200);
        for codec in [Compression::Zstd, Compression::Lz4] {
            let packed = compress(codec, &raw).expect("compress");
            assert!(packed.len() * 4 < raw.len(), "{codec:?} packed {} into {}", raw.len(), packed.len());
            assert_eq!(decompress(codec, &packed, raw.len()).expect("decompress"), raw);
        }
    }

    #[test]
    fn refuses_to_expand_past_the_limit() {
        let raw = vec![0u8; 1 << 20];
        for codec in [Compression::Zstd, Compression::Lz4] {
            let packed = compress(codec, &raw).expect("compress");
            let error = decompress(codec, &packed, 1000).expect_err("too large");
            assert_eq!(error, CompressionError::TooLarge { size: 1 << 20, limit: 1000 });
        }
    }

    #[test]
    fn rejects_garbage() {
        let zstd = decompress(Compression::Zstd, b"not a frame at all", 1 << 20);
        assert!(matches!(zstd, Err(CompressionError::Corrupt { .. })), "{zstd:?}");
        let lz4 = decompress(Compression::Lz4, b"\x40\x00\x00\x00\xff\xff\xff\xffnot a block", 1 << 20);
        assert!(matches!(lz4, Err(CompressionError::Corrupt { .. })), "{lz4:?}");
        let short = decompress(Compression::Lz4, b"\x40\x00", 1 << 20);
        assert!(matches!(short, Err(CompressionError::Corrupt { .. })), "{short:?}");
    }
}
