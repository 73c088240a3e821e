//! Bookmarks: a subscription's ack floors saved under a name, to seek it
//! (or another subscription of its topic) back to them later — Pub/Sub's
//! snapshots (`ferry.v1.Subscriber`'s bookmark calls).

use std::collections::BTreeMap;
use std::time::SystemTime;

use ferry_proto::v1 as api;

use crate::client::{rpc, subscriber, Client};
use crate::error::Result;
use crate::types::time_from_micros;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookmark {
    pub name: String,
    pub topic: String,
    /// Each partition's ack floor when it was made.
    pub floors: Vec<u64>,
    pub create_time: SystemTime,
    /// When the topic's retention would delete the oldest message it keeps.
    pub expire_time: SystemTime,
    pub labels: BTreeMap<String, String>,
}

fn bookmark_from_api(bookmark: api::Bookmark) -> Bookmark {
    Bookmark {
        name: bookmark.name,
        topic: bookmark.topic,
        floors: bookmark.floors,
        create_time: time_from_micros(bookmark.create_time_unix_micros),
        expire_time: time_from_micros(bookmark.expire_time_unix_micros),
        labels: bookmark.labels,
    }
}

impl Client {
    /// Saves `subscription`'s floors as bookmark `name`. A message acked
    /// above its partition's floor now is delivered again after a seek to it.
    pub async fn create_bookmark(
        &self,
        name: &str,
        subscription: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<Bookmark> {
        let request =
            api::CreateBookmarkRequest { name: name.to_owned(), subscription: subscription.to_owned(), labels };
        Ok(bookmark_from_api(self.router().call(rpc!(subscriber, create_bookmark, request)).await?))
    }

    pub async fn get_bookmark(&self, name: &str) -> Result<Bookmark> {
        let request = api::GetBookmarkRequest { name: name.to_owned() };
        Ok(bookmark_from_api(self.router().call(rpc!(subscriber, get_bookmark, request)).await?))
    }

    /// Every unexpired bookmark (of `topic`, when given), in name order.
    pub async fn list_bookmarks(&self, topic: Option<&str>) -> Result<Vec<Bookmark>> {
        let mut bookmarks = Vec::new();
        let mut page_token = String::new();
        loop {
            let topic = topic.unwrap_or_default().to_owned();
            let request = api::ListBookmarksRequest { topic, page_size: 0, page_token };
            let page = self.router().call(rpc!(subscriber, list_bookmarks, request)).await?;
            bookmarks.extend(page.bookmarks.into_iter().map(bookmark_from_api));
            if page.next_page_token.is_empty() {
                return Ok(bookmarks);
            }
            page_token = page.next_page_token;
        }
    }

    pub async fn delete_bookmark(&self, name: &str) -> Result<()> {
        let request = api::DeleteBookmarkRequest { name: name.to_owned() };
        self.router().call(rpc!(subscriber, delete_bookmark, request)).await?;
        Ok(())
    }

    /// Moves `subscription` to bookmark `name` (of its topic): each
    /// partition's floor becomes the bookmark's; what is above it is
    /// delivered again.
    pub async fn seek_to_bookmark(&self, subscription: &str, name: &str) -> Result<()> {
        let request =
            api::SeekRequest { subscription: subscription.to_owned(), bookmark: name.to_owned(), ..Default::default() };
        self.router().call(rpc!(subscriber, seek, request)).await?;
        Ok(())
    }
}
