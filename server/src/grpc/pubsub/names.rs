//! Pub/Sub resource names and Ferry's: `projects/P/topics/T` is the Ferry
//! topic `P.T` (and subscriptions alike), so a project is a namespace.
//!
//! The project may not hold a `.`, so the first `.` of a Ferry name splits
//! it back. Pub/Sub ids may hold `~`, `+` and `%`, which Ferry names cannot,
//! and no escape could be undone without escaping common characters too:
//! such ids are refused, naming the field (see the README's differences).

use crate::domain::limits::NAME_BYTES_MAX;
use crate::grpc::ApiError;

/// Pub/Sub's longest topic or subscription id.
const ID_CHARS_MAX: usize = 255;

/// A resource kind, as it appears in names: `topics`, `subscriptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Topic,
    Subscription,
    /// A Pub/Sub snapshot: a Ferry bookmark.
    Snapshot,
}

impl Kind {
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Topic => "topics",
            Kind::Subscription => "subscriptions",
            Kind::Snapshot => "snapshots",
        }
    }
}

/// The project of `projects/P`, checked.
pub fn project(field: &str, name: &str) -> Result<String, ApiError> {
    let project = name
        .strip_prefix("projects/")
        .ok_or_else(|| ApiError::invalid(field, format!("{name:?} is not \"projects/{{project}}\"")))?;
    check_project(field, project)?;
    Ok(project.to_owned())
}

/// The Ferry name of `projects/P/<kind>/ID`.
pub fn to_ferry(field: &str, kind: Kind, name: &str) -> Result<String, ApiError> {
    let shape = || format!("{name:?} is not \"projects/{{project}}/{}/{{id}}\"", kind.collection());
    let rest = name.strip_prefix("projects/").ok_or_else(|| ApiError::invalid(field, shape()))?;
    let (project, rest) = rest.split_once('/').ok_or_else(|| ApiError::invalid(field, shape()))?;
    let id = rest
        .strip_prefix(kind.collection())
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| ApiError::invalid(field, shape()))?;
    check_project(field, project)?;
    check_id(field, id)?;
    let ferry = format!("{project}.{id}");
    if ferry.len() > NAME_BYTES_MAX {
        return Err(ApiError::invalid(
            field,
            format!("project and id together may be {} bytes in Ferry; {name:?} is longer", NAME_BYTES_MAX - 1),
        ));
    }
    Ok(ferry)
}

/// The Pub/Sub name of Ferry's `P.ID`; `None` for a Ferry name that is no
/// Pub/Sub resource (no `.`, or a project Pub/Sub cannot have).
pub fn from_ferry(kind: Kind, ferry: &str) -> Option<String> {
    let (project, id) = split_ferry(ferry)?;
    Some(format!("projects/{project}/{}/{id}", kind.collection()))
}

/// The project and id of Ferry's `P.ID`, when it is a Pub/Sub resource.
pub fn split_ferry(ferry: &str) -> Option<(&str, &str)> {
    let (project, id) = ferry.split_once('.')?;
    (check_project("", project).is_ok() && !id.is_empty()).then_some((project, id))
}

/// The prefix every Ferry name of `project` starts with.
pub fn ferry_prefix(project: &str) -> String {
    format!("{project}.")
}

fn check_project(field: &str, project: &str) -> Result<(), ApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if project.is_empty() || !project.chars().all(allowed) {
        return Err(ApiError::invalid(
            field,
            format!("project {project:?}: Ferry takes letters, digits, '-' and '_' in a project"),
        ));
    }
    Ok(())
}

/// Pub/Sub's id rules, less what Ferry names cannot hold.
fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    let count = id.chars().count();
    if !(3..=ID_CHARS_MAX).contains(&count) {
        return Err(ApiError::invalid(field, format!("id {id:?} must be 3 to {ID_CHARS_MAX} characters")));
    }
    if !id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(ApiError::invalid(field, format!("id {id:?} must start with a letter")));
    }
    if id.to_ascii_lowercase().starts_with("goog") {
        return Err(ApiError::invalid(field, format!("id {id:?} must not start with \"goog\"")));
    }
    if let Some(bad) = id.chars().find(|c| matches!(c, '~' | '+' | '%')) {
        return Err(ApiError::invalid(field, format!("id {id:?}: Ferry names cannot hold {bad:?}")));
    }
    if let Some(bad) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(ApiError::invalid(field, format!("id {id:?}: character {bad:?} is not allowed")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(result: Result<String, ApiError>) -> String {
        result.expect_err("refused").to_string()
    }

    #[test]
    fn names_map_both_ways_with_the_project_as_a_namespace() {
        assert_eq!(to_ferry("name", Kind::Topic, "projects/acme/topics/orders.v1").expect("valid"), "acme.orders.v1");
        assert_eq!(from_ferry(Kind::Topic, "acme.orders.v1").as_deref(), Some("projects/acme/topics/orders.v1"));
        let sub = to_ferry("name", Kind::Subscription, "projects/p-1/subscriptions/billing").expect("valid");
        assert_eq!(sub, "p-1.billing");
        assert_eq!(from_ferry(Kind::Subscription, &sub).as_deref(), Some("projects/p-1/subscriptions/billing"));
        assert_eq!(from_ferry(Kind::Topic, "native"), None, "a Ferry name without a project");
        assert_eq!(project("project", "projects/acme").expect("valid"), "acme");
        assert_eq!(ferry_prefix("acme"), "acme.");
    }

    #[test]
    fn bad_names_are_refused_naming_the_field_and_the_rule() {
        let topic = |name: &str| problem(to_ferry("name", Kind::Topic, name));
        assert!(topic("orders").contains("is not \"projects/{project}/topics/{id}\""), "{}", topic("orders"));
        assert!(topic("projects/acme/subscriptions/x12").contains("topics"));
        assert!(topic("projects/acme/topics/ab").contains("3 to 255"));
        assert!(topic("projects/acme/topics/1abc").contains("start with a letter"));
        assert!(topic("projects/acme/topics/google-x").contains("goog"));
        assert!(topic("projects/acme/topics/a~bc").contains("cannot hold '~'"));
        assert!(topic("projects/a.b/topics/abc").contains("project \"a.b\""));
        let long = format!("projects/{}/topics/{}", "p".repeat(40), "t".repeat(220));
        assert!(topic(&long).contains("248 bytes"), "{}", topic(&long));
        assert!(problem(project("project", "acme")).contains("projects/{project}"));
    }
}
