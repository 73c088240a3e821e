//! `InvalidArgument`: a request the server refuses before doing anything.

use std::fmt;

/// A field of a request broke a rule. The message names the field and the rule,
/// e.g. `messages[3].data: 11534336 bytes is over the topic's limit of 10485760`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidArgument {
    pub field: String,
    pub problem: String,
}

impl InvalidArgument {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }
}

impl fmt::Display for InvalidArgument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}
