//! `RpcMetrics`: for each gRPC method the node serves, how long its unary
//! calls took and how many of its streams started and ended, by status
//! code. Recorded by `rpc_observe.rs`, rendered with the node's metrics.
//!
//! - `ferry_rpc_duration_seconds{service,method,code}`: a histogram of unary
//!   calls, from the request's arrival until the response's end (its
//!   trailers). A `Pull` that waits for messages counts its wait.
//! - `ferry_rpc_streams_started_total{service,method}` and
//!   `ferry_rpc_streams_ended_total{service,method,code}`: streaming calls.
//!   A stream lasts as long as its consumer (hours, often), so a histogram
//!   of its duration says nothing about the server; how many open, and how
//!   they end, does (started minus ended is the number open now).
//!
//! Labels are bounded: the methods are those of the `.proto` services
//! (read from their compiled descriptors, so the list cannot drift from
//! what is served), any other path is the one method `unknown`, and codes
//! are gRPC's 17. Every series is allocated up front, so recording is a few
//! atomic adds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferry_metrics::{Exposition, Histogram};
use prost::Message;
use prost_types::FileDescriptorSet;
use tonic::Code;

/// Upper bounds of the latency buckets: from a read answered from memory
/// (under a millisecond) through a publish committed by a quorum with
/// fsync (milliseconds) to calls held by an election or a long-poll, up to
/// the commit timeout's order (seconds).
pub static DURATION_BOUNDS_SECONDS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// gRPC's status codes, in the order of their numbers, named as the gRPC
/// specification names them.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The label of requests to a path no service serves.
const UNKNOWN: &str = "unknown";

/// A method's index in [`RpcMetrics`].
pub type MethodId = usize;

pub struct RpcMetrics {
    methods: Vec<Method>,
    /// `/package.Service/Method` → index in `methods`.
    by_path: HashMap<String, MethodId>,
    /// Index of the method `unknown`.
    unknown: MethodId,
}

struct Method {
    service: String,
    name: String,
    calls: Calls,
}

enum Calls {
    /// Latency per status code.
    Unary(Box<[Histogram]>),
    Streaming {
        started: AtomicU64,
        ended: Box<[AtomicU64]>,
    },
}

impl std::fmt::Debug for RpcMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcMetrics").field("methods", &self.methods.len()).finish()
    }
}

impl RpcMetrics {
    /// The methods of every service a node serves: `ferry.v1`, the internal
    /// peer services (`ferry.internal.v1.Raft`, `Groups`, `Testing`) and
    /// gRPC health.
    pub fn for_node() -> Self {
        Self::from_descriptor_sets(&[ferry_proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET])
    }

    /// Panics if a set does not decode: they are compiled into the program.
    fn from_descriptor_sets(sets: &[&[u8]]) -> Self {
        let mut methods = Vec::new();
        for set in sets {
            let set = FileDescriptorSet::decode(*set).expect("a compiled-in file descriptor set decodes");
            for file in &set.file {
                for service in &file.service {
                    let service_name = format!("{}.{}", file.package(), service.name());
                    for method in &service.method {
                        let streaming = method.client_streaming() || method.server_streaming();
                        methods.push(Method::new(&service_name, method.name(), streaming));
                    }
                }
            }
        }
        let by_path = methods.iter().enumerate().map(|(id, m)| (format!("/{}/{}", m.service, m.name), id)).collect();
        methods.push(Method::new(UNKNOWN, UNKNOWN, false));
        Self { unknown: methods.len() - 1, methods, by_path }
    }

    /// The method a request path calls (`/ferry.v1.Publisher/Publish`).
    pub fn method(&self, path: &str) -> MethodId {
        self.by_path.get(path).copied().unwrap_or(self.unknown)
    }

    pub fn is_streaming(&self, method: MethodId) -> bool {
        matches!(self.methods[method].calls, Calls::Streaming { .. })
    }

    pub fn stream_started(&self, method: MethodId) {
        if let Calls::Streaming { started, .. } = &self.methods[method].calls {
            started.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A call of `method` ended with `code` after `elapsed`.
    pub fn finished(&self, method: MethodId, code: Code, elapsed: Duration) {
        let code = code_index(code);
        match &self.methods[method].calls {
            Calls::Unary(durations) => durations[code].observe(elapsed.as_secs_f64()),
            Calls::Streaming { ended, .. } => {
                ended[code].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The families above. Unary series appear once they have a call, and
    /// stream ends once a stream ended with the code; every streaming
    /// method has its started count, 0 included.
    pub fn render(&self, text: &mut Exposition) {
        let help = "Unary gRPC calls served, by latency (arrival to the response's end) and status code.";
        for method in &self.methods {
            let Calls::Unary(durations) = &method.calls else { continue };
            for (code, histogram) in CODE_NAMES.iter().zip(durations.iter()).filter(|(_, h)| !h.is_empty()) {
                let labels = [("service", method.service.as_str()), ("method", &method.name), ("code", code)];
                text.histogram("ferry_rpc_duration_seconds", help, &labels, &histogram.snapshot());
            }
        }
        let help = "Streaming gRPC calls started.";
        for method in &self.methods {
            let Calls::Streaming { started, .. } = &method.calls else { continue };
            let labels = [("service", method.service.as_str()), ("method", &method.name)];
            text.counter("ferry_rpc_streams_started_total", help, &labels, started.load(Ordering::Relaxed));
        }
        let help = "Streaming gRPC calls ended, by status code (CANCELLED: the client went away).";
        for method in &self.methods {
            let Calls::Streaming { ended, .. } = &method.calls else { continue };
            for (code, count) in CODE_NAMES.iter().zip(ended.iter()) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let labels = [("service", method.service.as_str()), ("method", &method.name), ("code", code)];
                    text.counter("ferry_rpc_streams_ended_total", help, &labels, count);
                }
            }
        }
    }
}

impl Method {
    fn new(service: &str, name: &str, streaming: bool) -> Self {
        let calls = if streaming {
            Calls::Streaming {
                started: AtomicU64::new(0),
                ended: CODE_NAMES.iter().map(|_| AtomicU64::new(0)).collect(),
            }
        } else {
            Calls::Unary(CODE_NAMES.iter().map(|_| Histogram::new(&DURATION_BOUNDS_SECONDS)).collect())
        };
        Self { service: service.to_owned(), name: name.to_owned(), calls }
    }
}

/// A code's index in [`CODE_NAMES`]; a number gRPC does not define is UNKNOWN.
fn code_index(code: Code) -> usize {
    usize::try_from(code as i32).ok().filter(|i| *i < CODE_NAMES.len()).unwrap_or(Code::Unknown as usize)
}

/// The status name of code `code` (`INVALID_ARGUMENT`).
pub fn code_name(code: Code) -> &'static str {
    CODE_NAMES[code_index(code)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_serves_its_proto_methods_and_knows_which_stream() {
        let rpc = RpcMetrics::for_node();
        let publish = rpc.method("/ferry.v1.Publisher/Publish");
        assert_ne!(publish, rpc.unknown);
        assert!(!rpc.is_streaming(publish));
        assert!(rpc.is_streaming(rpc.method("/ferry.v1.Subscriber/StreamingPull")));
        assert_ne!(rpc.method("/ferry.internal.v1.Raft/AppendEntries"), rpc.unknown);
        assert_ne!(rpc.method("/grpc.health.v1.Health/Check"), rpc.unknown);
        assert!(rpc.is_streaming(rpc.method("/grpc.health.v1.Health/Watch")));
        assert_eq!(rpc.method("/ferry.v1.Publisher/NoSuchMethod"), rpc.unknown);
        assert_eq!(rpc.method("/"), rpc.unknown);
    }

    #[test]
    fn codes_are_named_as_grpc_names_them() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(code_name(Code::Unauthenticated), "UNAUTHENTICATED");
    }

    #[test]
    fn calls_are_rendered_under_their_method_and_code_only_once_seen() {
        let rpc = RpcMetrics::for_node();
        let publish = rpc.method("/ferry.v1.Publisher/Publish");
        rpc.finished(publish, Code::Ok, Duration::from_micros(300));
        rpc.finished(publish, Code::Ok, Duration::from_millis(20));
        rpc.finished(rpc.method("/nowhere/At"), Code::Unimplemented, Duration::from_micros(50));
        let pull = rpc.method("/ferry.v1.Subscriber/StreamingPull");
        rpc.stream_started(pull);
        rpc.stream_started(pull);
        rpc.finished(pull, Code::Cancelled, Duration::from_secs(3600));
        let mut text = Exposition::default();
        rpc.render(&mut text);
        let text = text.into_text();

        let publish = "service=\"ferry.v1.Publisher\",method=\"Publish\",code=\"OK\"";
        assert!(text.contains(&format!("ferry_rpc_duration_seconds_bucket{{{publish},le=\"0.0005\"}} 1\n")), "{text}");
        assert!(text.contains(&format!("ferry_rpc_duration_seconds_bucket{{{publish},le=\"0.025\"}} 2\n")), "{text}");
        assert!(text.contains(&format!("ferry_rpc_duration_seconds_count{{{publish}}} 2\n")), "{text}");
        let unknown = "service=\"unknown\",method=\"unknown\",code=\"UNIMPLEMENTED\"";
        assert!(text.contains(&format!("ferry_rpc_duration_seconds_count{{{unknown}}} 1\n")), "{text}");
        assert!(!text.contains("method=\"CreateTopic\""), "no series before a call: {text}");
        let stream = "service=\"ferry.v1.Subscriber\",method=\"StreamingPull\"";
        assert!(text.contains(&format!("ferry_rpc_streams_started_total{{{stream}}} 2\n")), "{text}");
        assert!(text.contains(&format!("ferry_rpc_streams_ended_total{{{stream},code=\"CANCELLED\"}} 1\n")), "{text}");
        assert!(
            !text.contains("ferry_rpc_duration_seconds_count{service=\"ferry.v1.Subscriber\",method=\"StreamingPull\"")
        );
    }
}
