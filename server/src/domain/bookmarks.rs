//! Bookmarks: a subscription's ack floors saved under a name, so that
//! subscription, or another on the same topic, can be sought back to them
//! later (Pub/Sub's snapshots). Only the floors are saved: a message acked
//! above its partition's floor when the bookmark was made is delivered again
//! after a seek to it, which at-least-once allows.
//!
//! A bookmark expires when the topic's retention would have deleted the
//! oldest message it keeps; expiry is judged on the leader's clock stamped
//! into each command, as locks' is.

use std::collections::BTreeMap;

use super::catalog::Catalog;
use super::limits::BOOKMARKS_MAX;
use super::outcome::{Applied, Rejection, Response, Write};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookmarkState {
    pub name: String,
    pub topic: String,
    pub topic_id: u64,
    /// Each partition's ack floor when the bookmark was made.
    pub floors: Vec<u64>,
    pub create_time_us: i64,
    pub expire_time_us: i64,
    pub labels: BTreeMap<String, String>,
}

impl BookmarkState {
    pub fn expired(&self, now_us: i64) -> bool {
        self.expire_time_us <= now_us
    }
}

/// Saves `bookmark` (made at its `create_time_us`, the leader's clock). A
/// name held by an expired bookmark is free again.
pub fn create(catalog: &mut Catalog, bookmark: BookmarkState) -> Applied {
    let now_us = bookmark.create_time_us;
    if catalog.bookmarks.get(&bookmark.name).is_some_and(|b| !b.expired(now_us)) {
        return Applied::rejected(Rejection::BookmarkExists { name: bookmark.name });
    }
    if catalog.topic(&bookmark.topic).is_none_or(|t| t.id != bookmark.topic_id) {
        return Applied::rejected(Rejection::TopicNotFound { name: bookmark.topic });
    }
    let mut writes = Vec::new();
    if catalog.bookmarks.len() >= BOOKMARKS_MAX {
        let expired: Vec<String> =
            catalog.bookmarks.values().filter(|b| b.expired(now_us)).map(|b| b.name.clone()).collect();
        if expired.is_empty() {
            return Applied::rejected(Rejection::TooManyBookmarks { limit: BOOKMARKS_MAX });
        }
        for name in expired {
            catalog.bookmarks.remove(&name);
            writes.push(Write::DeleteBookmark { name });
        }
    }
    catalog.bookmarks.insert(bookmark.name.clone(), bookmark.clone());
    writes.push(Write::PutBookmark(bookmark.clone()));
    Applied { response: Response::BookmarkCreated(bookmark), writes }
}

pub fn delete(catalog: &mut Catalog, name: &str) -> Applied {
    if catalog.bookmarks.remove(name).is_none() {
        return Applied::rejected(Rejection::BookmarkNotFound { name: name.to_owned() });
    }
    Applied { response: Response::BookmarkDeleted, writes: vec![Write::DeleteBookmark { name: name.to_owned() }] }
}

/// The writes that drop a deleted topic's bookmarks.
pub fn drop_topics(catalog: &mut Catalog, topic_id: u64) -> Vec<Write> {
    let doomed: Vec<String> =
        catalog.bookmarks.values().filter(|b| b.topic_id == topic_id).map(|b| b.name.clone()).collect();
    doomed
        .into_iter()
        .map(|name| {
            catalog.bookmarks.remove(&name);
            Write::DeleteBookmark { name }
        })
        .collect()
}
