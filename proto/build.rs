//! Compiles the `.proto` files with `protox` (a pure-Rust protobuf compiler), so
//! building Ferry needs no system `protoc`.

use std::path::Path;

const PROTOS: &[&str] = &[
    "ferry/v1/ferry.proto",
    "ferry/internal/v1/storage.proto",
    "ferry/internal/v1/raft.proto",
    "ferry/internal/v1/groups.proto",
    "ferry/internal/v1/testing.proto",
    "google/pubsub/v1/pubsub.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, [Path::new(".")])?;
    // Kept for the server, which reads its services' methods from it
    // (`FILE_DESCRIPTOR_SET`).
    let out_dir = std::env::var("OUT_DIR")?;
    std::fs::write(Path::new(&out_dir).join("ferry_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure()
        // `bytes` fields decode as `Bytes` slices of the input buffer: no copy.
        .bytes(".")
        // Deterministic map order, so every replica encodes a record identically.
        .btree_map(".")
        // Decodes each message from its own bytes (see `src/codec.rs`).
        .codec_path("crate::codec::Prost")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
