//! Bookmarks (`domain::bookmarks`) as the Subscriber service serves them:
//! saved from a subscription's floors as every group holding its partitions
//! reports them, kept in group 0, and sought to by `Seek` (each group reads
//! the floors from its own replica of group 0).

use ferry_proto::v1 as api;

use super::convert;
use super::status::ApiError;
use super::subscriber::SubscriberService;
use crate::domain::{self, validate, BookmarkState, Command, Rejection};

/// The least time a new bookmark lives, whatever its oldest message.
const LIFETIME_MIN_US: i64 = 3600 * 1_000_000;

pub fn bookmark_to_api(bookmark: &BookmarkState) -> api::Bookmark {
    api::Bookmark {
        name: bookmark.name.clone(),
        topic: bookmark.topic.clone(),
        floors: bookmark.floors.clone(),
        create_time_unix_micros: bookmark.create_time_us,
        expire_time_unix_micros: bookmark.expire_time_us,
        labels: bookmark.labels.clone(),
    }
}

impl SubscriberService {
    /// Saves the subscription's floors now. A floor read from a group may
    /// be a moment old; an older floor only redelivers more.
    pub(super) async fn save_bookmark(&self, request: api::CreateBookmarkRequest) -> Result<api::Bookmark, ApiError> {
        validate::name("name", &request.name)?;
        validate::name("subscription", &request.subscription)?;
        validate::labels("labels", &request.labels)?;
        self.proposer.ensure_leader()?;
        let now_us = self.clock.wall_us();
        let (topic, topic_id, partitions, retention_seconds) = {
            let catalog = self.proposer.state().catalog();
            if catalog.bookmarks.get(&request.name).is_some_and(|b| !b.expired(now_us)) {
                return Err(Rejection::BookmarkExists { name: request.name }.into());
            }
            let subscription = catalog
                .subscription(&request.subscription)
                .ok_or_else(|| Rejection::SubscriptionNotFound { name: request.subscription.clone() })?;
            let topic = catalog
                .topic_by_id(subscription.topic_id)
                .ok_or_else(|| Rejection::TopicNotFound { name: subscription.topic.clone() })?;
            (topic.name.clone(), topic.id, topic.config.partitions, topic.config.retention_seconds)
        };
        let backlog = self.get(&request.subscription).await?.backlog.unwrap_or_default();
        let mut floors = vec![0; partitions as usize];
        for progress in &backlog.partitions {
            if let Some(floor) = floors.get_mut(progress.partition as usize) {
                *floor = progress.ack_floor;
            }
        }
        if backlog.partitions.len() != floors.len() {
            return Err(ApiError::Unavailable("not every partition reported its floor; retry".into()));
        }
        // It keeps nothing once retention deletes its oldest unacked message.
        let oldest_us =
            if backlog.unacked_messages > 0 { backlog.oldest_unacked_publish_time_unix_micros } else { now_us };
        let retention_us = i64::try_from(retention_seconds.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
        let expire_time_us = oldest_us.saturating_add(retention_us).max(now_us.saturating_add(LIFETIME_MIN_US));
        let bookmark = BookmarkState {
            name: request.name,
            topic,
            topic_id,
            floors,
            create_time_us: now_us,
            expire_time_us,
            labels: request.labels,
        };
        match self.proposer.propose(Command::CreateBookmark(bookmark)).await? {
            domain::Response::BookmarkCreated(bookmark) => Ok(bookmark_to_api(&bookmark)),
            other => Err(ApiError::Internal(format!("create bookmark answered {other:?}"))),
        }
    }

    /// An unexpired bookmark.
    pub(super) fn find_bookmark(&self, name: &str) -> Result<api::Bookmark, ApiError> {
        validate::name("name", name)?;
        self.proposer.ensure_leader()?;
        let now_us = self.clock.wall_us();
        let catalog = self.proposer.state().catalog();
        match catalog.bookmarks.get(name).filter(|b| !b.expired(now_us)) {
            Some(bookmark) => Ok(bookmark_to_api(bookmark)),
            None => Err(Rejection::BookmarkNotFound { name: name.to_owned() }.into()),
        }
    }

    pub(super) fn bookmarks_page(
        &self,
        request: api::ListBookmarksRequest,
    ) -> Result<api::ListBookmarksResponse, ApiError> {
        let page_size = validate::page_size(request.page_size)?;
        if !request.topic.is_empty() {
            validate::name("topic", &request.topic)?;
        }
        self.proposer.ensure_leader()?;
        let now_us = self.clock.wall_us();
        let catalog = self.proposer.state().catalog();
        let after = std::ops::Bound::Excluded(request.page_token.clone());
        let matching = catalog
            .bookmarks
            .range((after, std::ops::Bound::Unbounded))
            .map(|(_, b)| b)
            .filter(|b| !b.expired(now_us) && (request.topic.is_empty() || b.topic == request.topic))
            .map(bookmark_to_api);
        let (bookmarks, next_page_token) = convert::page(matching, page_size, |b| &b.name);
        Ok(api::ListBookmarksResponse { bookmarks, next_page_token })
    }

    pub(super) async fn remove_bookmark(&self, name: String) -> Result<(), ApiError> {
        validate::name("name", &name)?;
        self.proposer.ensure_leader()?;
        match self.proposer.propose(Command::DeleteBookmark { name }).await? {
            domain::Response::BookmarkDeleted => Ok(()),
            other => Err(ApiError::Internal(format!("delete bookmark answered {other:?}"))),
        }
    }

    /// The floors of a seek's bookmark, as group 0's leader holds it: it
    /// must exist (unexpired) and be of the subscription's topic. Resolved
    /// once here, so every group seeks to the same floors.
    pub(super) fn bookmark_floors(&self, subscription: &str, bookmark: &str) -> Result<Vec<u64>, ApiError> {
        validate::name("bookmark", bookmark)?;
        validate::name("subscription", subscription)?;
        self.proposer.ensure_leader()?;
        let now_us = self.clock.wall_us();
        let catalog = self.proposer.state().catalog();
        let bookmark = catalog
            .bookmarks
            .get(bookmark)
            .filter(|b| !b.expired(now_us))
            .ok_or_else(|| Rejection::BookmarkNotFound { name: bookmark.to_owned() })?;
        let subscription = catalog
            .subscription(subscription)
            .ok_or_else(|| Rejection::SubscriptionNotFound { name: subscription.to_owned() })?;
        if subscription.topic_id != bookmark.topic_id {
            let problem = format!("is of topic {:?}, not the subscription's {:?}", bookmark.topic, subscription.topic);
            return Err(ApiError::invalid("bookmark", problem));
        }
        Ok(bookmark.floors.clone())
    }
}
