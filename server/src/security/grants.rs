//! The token file and what a token may do.
//!
//! ```toml
//! [[token]]
//! name = "etl"                      # for logs and errors; never the secret
//! sha256 = "9f86d08188…"            # SHA-256 of the token, in hex
//! subscribe = ["clicks", "views.*"] # topic names, `*` matching any run of characters
//! publish = []
//! admin = []                        # create and delete these topics and their subscriptions
//! locks = ["ferry-mirror.*"]        # lock names it may take, release and see
//! cluster = false                   # membership, leadership moves, backups
//! ```
//!
//! Any valid token may read the catalog (get and list topics and
//! subscriptions, cluster status); the rest is per action and topic (or
//! lock name). A subscription's calls are judged by its topic.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tonic::Status;

/// What a call does, as far as permissions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read the catalog or the cluster's status; use locks.
    Read,
    Publish,
    /// Pull, acknowledge, extend deadlines, stream and seek a subscription.
    Subscribe,
    /// Create and delete topics and subscriptions.
    Admin,
    /// Change membership, move leaders, back up.
    Cluster,
    /// Take, renew, release and see a lock (by the lock's name).
    Lock,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Publish => "publish to",
            Action::Subscribe => "subscribe to",
            Action::Admin => "administer",
            Action::Cluster => "administer the cluster",
            Action::Lock => "use the lock",
        }
    }
}

/// Who is calling, as the authentication layer found out.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Another node of the cluster (the peer token): every right.
    Peer,
    Token(Arc<Grant>),
}

/// One token's rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    publish: Vec<Pattern>,
    subscribe: Vec<Pattern>,
    admin: Vec<Pattern>,
    /// Lock names it may take and release.
    locks: Vec<Pattern>,
    cluster: bool,
}

impl Grant {
    fn allows(&self, action: Action, topic: Option<&str>) -> bool {
        let any = |patterns: &[Pattern]| topic.is_some_and(|topic| patterns.iter().any(|p| p.matches(topic)));
        match action {
            Action::Read => true,
            Action::Publish => any(&self.publish),
            Action::Subscribe => any(&self.subscribe),
            Action::Admin => any(&self.admin),
            Action::Lock => any(&self.locks),
            Action::Cluster => self.cluster,
        }
    }
}

/// Whether the call whose request carries `extensions` may do `action` to
/// `topic`: PERMISSION_DENIED naming the token, the action and the topic if
/// not. A call without a principal comes from a node that checks nothing.
pub fn authorize(extensions: &tonic::Extensions, action: Action, topic: Option<&str>) -> Result<(), Status> {
    authorize_as(extensions.get::<Principal>(), action, topic)
}

/// [`authorize`], for a principal taken from a call earlier.
pub fn authorize_as(principal: Option<&Principal>, action: Action, topic: Option<&str>) -> Result<(), Status> {
    match principal {
        None | Some(Principal::Peer) => Ok(()),
        Some(Principal::Token(grant)) if grant.allows(action, topic) => Ok(()),
        Some(Principal::Token(grant)) => Err(Status::permission_denied(match topic {
            Some(name) if action == Action::Lock => {
                format!("token {:?} may not {} {name:?}", grant.name, action.name())
            }
            Some(topic) => format!("token {:?} may not {} topic {topic:?}", grant.name, action.name()),
            None => format!("token {:?} may not {}", grant.name, action.name()),
        })),
    }
}

/// A topic name pattern: `*` matches any run of characters, anything else itself.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern(String);

impl Pattern {
    fn matches(&self, name: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = name.strip_prefix(first) else { return false };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

/// Every token of the file, by the SHA-256 of its secret.
#[derive(Debug, Default)]
pub struct Grants {
    by_hash: HashMap<String, Arc<Grant>>,
}

impl Grants {
    /// Reads `path`; errors name the file, the token and the key.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("auth file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("auth file {}: {e}", path.display()))
    }

    fn parse(text: &str) -> Result<Self, String> {
        let table: toml::Table = text.parse().map_err(|e| format!("not TOML: {e}"))?;
        if let Some(key) = table.keys().find(|k| *k != "token") {
            return Err(format!("unknown key {key:?} (only [[token]] tables)"));
        }
        let mut grants = Grants::default();
        let tokens = table.get("token").and_then(toml::Value::as_array).cloned().unwrap_or_default();
        for (i, token) in tokens.iter().enumerate() {
            let token = token.as_table().ok_or_else(|| format!("token {i} is not a table"))?;
            let grant = grant_of(token).map_err(|e| format!("token {i}: {e}"))?;
            let hash = token.get("sha256").and_then(toml::Value::as_str).unwrap_or_default().to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("token {:?}: sha256 must be 64 hex digits (sha256sum of the token)", grant.name));
            }
            if grants.by_hash.insert(hash, Arc::new(grant)).is_some() {
                return Err(format!("token {i}: the same secret is listed twice"));
            }
        }
        Ok(grants)
    }

    /// The grant of the token whose secret is `secret`.
    pub fn find(&self, secret: &str) -> Option<Arc<Grant>> {
        self.by_hash.get(&sha256_hex(secret)).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

fn grant_of(token: &toml::Table) -> Result<Grant, String> {
    const KEYS: [&str; 7] = ["name", "sha256", "publish", "subscribe", "admin", "locks", "cluster"];
    if let Some(key) = token.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!("unknown key {key:?} (allowed: {})", KEYS.join(", ")));
    }
    let name = token.get("name").and_then(toml::Value::as_str).ok_or("needs a name")?.to_owned();
    let patterns = |key: &str| -> Result<Vec<Pattern>, String> {
        let Some(value) = token.get(key) else { return Ok(Vec::new()) };
        let list = value.as_array().ok_or_else(|| format!("{name:?}: {key} must be a list of topic names"))?;
        list.iter()
            .map(|v| v.as_str().map(|s| Pattern(s.to_owned())))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("{name:?}: {key} must be a list of topic names"))
    };
    let cluster = match token.get("cluster") {
        None => false,
        Some(value) => value.as_bool().ok_or_else(|| format!("{name:?}: cluster must be true or false"))?,
    };
    Ok(Grant {
        publish: patterns("publish")?,
        subscribe: patterns("subscribe")?,
        admin: patterns("admin")?,
        locks: patterns("locks")?,
        cluster,
        name,
    })
}

/// The SHA-256 of `secret`, in lower-case hex (what `sha256sum` prints).
pub fn sha256_hex(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(text: &str) -> Grants {
        Grants::parse(text).expect("valid")
    }

    #[test]
    fn patterns_match_names_with_stars_anywhere() {
        let p = |s: &str| Pattern(s.to_owned());
        assert!(p("clicks").matches("clicks") && !p("clicks").matches("clicks2"));
        assert!(p("views.*").matches("views.eu") && p("views.*").matches("views.") && !p("views.*").matches("view"));
        assert!(p("*").matches("anything") && p("*.eu").matches("a.eu") && !p("*.eu").matches("a.us"));
        assert!(p("a*b*c").matches("aXbYc") && p("a*b*c").matches("abc") && !p("a*b*c").matches("acb"));
        assert!(!p("ab*ba").matches("aba"), "the two ends may not overlap");
    }

    #[test]
    fn a_token_may_do_what_its_grant_says_to_the_topics_it_names() {
        let secret = "s3cret";
        let text = format!(
            "[[token]]\nname = \"etl\"\nsha256 = \"{}\"\nsubscribe = [\"clicks\", \"views.*\"]\npublish = [\"dead.*\"]\n",
            sha256_hex(secret)
        );
        let grants = grants(&text);
        assert!(grants.find("wrong").is_none());
        let grant = grants.find(secret).expect("found by its secret");
        let mut extensions = tonic::Extensions::new();
        extensions.insert(Principal::Token(grant));
        assert!(authorize(&extensions, Action::Subscribe, Some("views.eu")).is_ok());
        assert!(authorize(&extensions, Action::Publish, Some("dead.letters")).is_ok());
        assert!(authorize(&extensions, Action::Read, None).is_ok());
        let denied = authorize(&extensions, Action::Publish, Some("clicks")).expect_err("not granted");
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert_eq!(denied.message(), "token \"etl\" may not publish to topic \"clicks\"");
        assert!(authorize(&extensions, Action::Cluster, None).is_err());
        let lock = authorize(&extensions, Action::Lock, Some("ferry-mirror.x")).expect_err("no lock granted");
        assert_eq!(lock.message(), "token \"etl\" may not use the lock \"ferry-mirror.x\"");
        assert!(authorize(&extensions, Action::Admin, Some("clicks")).is_err());
        assert!(authorize(&tonic::Extensions::new(), Action::Cluster, None).is_ok(), "nothing checked without auth");
    }

    #[test]
    fn a_bad_file_is_refused_naming_the_token_and_key() {
        let err = |text: &str| Grants::parse(text).expect_err("invalid");
        assert!(err("[[token]]\nname = \"a\"\nsha256 = \"12\"\n").contains("64 hex digits"));
        assert!(err("[[token]]\nname = \"a\"\nsha256 = \"x\"\npublsh = []\n").contains("unknown key \"publsh\""));
        assert!(err("[[token]]\nsha256 = \"x\"\n").contains("needs a name"));
        assert!(err("[[token]]\nname = \"a\"\nsha256 = \"x\"\ncluster = 1\n").contains("true or false"));
        assert!(err("tokens = 1\n").contains("unknown key \"tokens\""));
        let hash = sha256_hex("same");
        let twice =
            format!("[[token]]\nname = \"a\"\nsha256 = \"{hash}\"\n[[token]]\nname = \"b\"\nsha256 = \"{hash}\"\n");
        assert!(err(&twice).contains("twice"));
    }
}
