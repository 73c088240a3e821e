//! Delivery: leader-local leases of messages to consumers.
//!
//! Pull leases messages until their ack deadline; Acknowledge commits acks
//! through Raft (they survive failover); ModifyAckDeadline changes leases.

pub mod ack_id;
pub mod dispatcher;
pub mod subscription;

#[cfg(test)]
mod tests;

pub use ack_id::{AckId, MalformedAckId};
pub use dispatcher::{DeliveryError, Dispatcher, OUTSTANDING_MAX_DEFAULT};
pub use subscription::{AckPlan, Delivery, MessageSource, SubscriptionDelivery};
