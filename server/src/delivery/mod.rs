//! Delivery: leader-local leases of messages to consumers.
//!
//! Pull leases messages until their ack deadline; Acknowledge commits acks
//! through Raft (they survive failover); ModifyAckDeadline changes leases.

pub mod ack_id;
pub mod backlog;
mod base64url;
mod by_position;
mod deadlines;
pub mod dispatcher;
mod leases;
pub mod policy;
pub mod subscription;

#[cfg(test)]
mod tests;

pub use ack_id::{AckId, MalformedAckId, Route};
pub use backlog::{backlog, Backlog};
pub use dispatcher::{DeliveryError, Dispatcher, Wakeups, OUTSTANDING_MAX_DEFAULT};
pub use policy::DeliveryPolicy;
pub use subscription::{
    AckPlan, Advanced, ConsumerId, Delivery, Exhausted, Holding, Leased, Lessee, MessageSource, SubscriptionDelivery,
    UNARY_CONSUMER,
};
