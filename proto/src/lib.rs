//! Generated protobuf types and gRPC stubs.
//!
//! - [`v1`]: the public `ferry.v1` API that clients speak.
//! - [`internal`]: the persistent formats of the server (Raft log entries,
//!   commands, state-machine records). Not part of the client API.
//! - [`pubsub`]: `google.pubsub.v1`, served for Pub/Sub's own clients.

pub mod codec;

/// The generated code, in modules named after the packages, so the
/// internal package's references to public messages resolve.
mod ferry {
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("ferry.v1");
    }

    pub mod internal {
        pub mod v1 {
            #![allow(clippy::all, missing_docs)]
            tonic::include_proto!("ferry.internal.v1");
        }
    }
}

/// `google.pubsub.v1`, which Ferry also serves so Pub/Sub clients work
/// unchanged (`docs/pubsub-compat.md`).
mod google {
    pub mod pubsub {
        pub mod v1 {
            #![allow(clippy::all, missing_docs)]
            tonic::include_proto!("google.pubsub.v1");
        }
    }
}

/// The public `ferry.v1` API.
pub use ferry::v1;

/// The Pub/Sub API Ferry serves beside its own (`google.pubsub.v1`).
pub use google::pubsub::v1 as pubsub;

/// Persistent formats of the server and calls between nodes (`ferry.internal.v1`).
pub use ferry::internal::v1 as internal;

pub mod compression;

/// Every `.proto` file above, compiled: a protobuf `FileDescriptorSet`
/// (services, their methods and whether each streams).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ferry_descriptor.bin"));

/// The partition of an ordering key: a stable hash, so a key maps to the same
/// partition on every node, every version and in every client.
pub fn partition_of_key(ordering_key: &str, partitions: u32) -> u32 {
    crc32fast::hash(ordering_key.as_bytes()) % partitions.max(1)
}
