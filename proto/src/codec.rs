//! The codec of every generated gRPC client and server: prost's encoder,
//! and a decoder that takes each message's bytes out of tonic's buffer
//! first and decodes from them.
//!
//! Why: prost decoding straight from tonic's `DecodeBuf` steps through it a
//! field at a time, each step a call into `BytesMut`; for a stream of small
//! messages that stepping was a tenth of a consumer's CPU. Taking the
//! message out is a split of the buffer, not a copy, and `bytes` fields stay
//! slices of it.

use std::marker::PhantomData;

use prost::bytes::Buf;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

/// Named in `build.rs` (`codec_path`); the generated stubs create it with
/// `default()`.
#[derive(Debug)]
pub struct Prost<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Prost<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for Prost<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = WholeMessageDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        WholeMessageDecoder(PhantomData)
    }
}

/// Decodes a message from its bytes, taken out of the buffer whole.
#[derive(Debug)]
pub struct WholeMessageDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for WholeMessageDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let message = buf.copy_to_bytes(buf.remaining());
        // As tonic's prost codec: a message that does not parse is INTERNAL.
        U::decode(message).map(Some).map_err(|error| Status::internal(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;
    use prost::bytes::{BufMut, Bytes, BytesMut};
    use tonic::codec::Streaming;

    use super::*;
    use crate::v1::{Message as FerryMessage, ReceivedMessage, StreamingPullResponse};

    /// A gRPC frame: uncompressed, its length, the message.
    fn frame(message: &[u8], body: &mut BytesMut) {
        body.put_u8(0);
        body.put_u32(message.len() as u32);
        body.put_slice(message);
    }

    fn response(offset: u64) -> StreamingPullResponse {
        let message = FerryMessage { data: Bytes::from(vec![b'x'; 100]), ..Default::default() };
        let received = ReceivedMessage { ack_id: "a".repeat(44), offset, message: Some(message), ..Default::default() };
        StreamingPullResponse { messages: vec![received; 3], ..Default::default() }
    }

    #[tokio::test]
    async fn messages_of_a_stream_decode_each_from_its_own_bytes_and_bad_bytes_are_internal() {
        let mut body = BytesMut::new();
        // Back to back in one chunk: each decodes from its own bytes only.
        frame(&response(1).encode_to_vec(), &mut body);
        frame(&response(2).encode_to_vec(), &mut body);
        frame(&[0xff, 0xff, 0xff], &mut body);
        let decoder = WholeMessageDecoder::<StreamingPullResponse>(PhantomData);
        let mut stream = Streaming::new_request(decoder, Full::new(body.freeze()), None, None);
        assert_eq!(stream.message().await.expect("first"), Some(response(1)));
        assert_eq!(stream.message().await.expect("second"), Some(response(2)));
        let error = stream.message().await.expect_err("not a message");
        assert_eq!(error.code(), tonic::Code::Internal);
    }
}
