//! Bookmarks: saved once per name until they expire, of an existing topic,
//! bounded in number, and gone with their topic.

use super::*;
use crate::domain::limits::BOOKMARKS_MAX;
use crate::domain::BookmarkState;

fn bookmark(name: &str, topic_id: u64, now_us: i64, expire_time_us: i64) -> BookmarkState {
    BookmarkState {
        name: name.into(),
        topic: "t".into(),
        topic_id,
        floors: vec![3, 0],
        create_time_us: now_us,
        expire_time_us,
        labels: Default::default(),
    }
}

#[test]
fn a_bookmark_is_saved_once_per_name_until_it_expires() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 2);
    let saved = bookmark("b", topic, 10, 100);
    assert_eq!(model.run(Command::CreateBookmark(saved.clone())), (Response::BookmarkCreated(saved.clone()), 1));
    let again = Response::Rejected(Rejection::BookmarkExists { name: "b".into() });
    assert_eq!(model.run(Command::CreateBookmark(bookmark("b", topic, 99, 200))), (again, 0));
    // Expired, its name is free again.
    let later = bookmark("b", topic, 100, 300);
    assert_eq!(model.run(Command::CreateBookmark(later.clone())), (Response::BookmarkCreated(later), 1));
    assert_eq!(model.run(Command::DeleteBookmark { name: "b".into() }), (Response::BookmarkDeleted, 1));
    let missing = Response::Rejected(Rejection::BookmarkNotFound { name: "b".into() });
    assert_eq!(model.run(Command::DeleteBookmark { name: "b".into() }), (missing, 0));
}

#[test]
fn a_bookmark_of_a_topic_deleted_meanwhile_is_refused_and_a_deleted_topic_takes_its_bookmarks() {
    let mut model = Model::default();
    let old = model.create_topic("t", 2);
    model.run(Command::CreateBookmark(bookmark("kept", old, 1, 100)));
    model.run(Command::DeleteTopic { name: "t".into() });
    assert!(model.catalog.bookmarks.is_empty(), "gone with its topic");
    let new = model.create_topic("t", 2);
    let stale = Response::Rejected(Rejection::TopicNotFound { name: "t".into() });
    assert_eq!(model.run(Command::CreateBookmark(bookmark("b", old, 2, 100))), (stale, 0), "of the old topic");
    assert!(matches!(model.run(Command::CreateBookmark(bookmark("b", new, 2, 100))).0, Response::BookmarkCreated(_)));
}

#[test]
fn the_cluster_keeps_at_most_bookmarks_max_making_room_from_expired_ones() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 2);
    for i in 0..BOOKMARKS_MAX {
        let expires = if i == 7 { 50 } else { 1_000 };
        model.run(Command::CreateBookmark(bookmark(&format!("b{i}"), topic, 1, expires)));
    }
    let full = Response::Rejected(Rejection::TooManyBookmarks { limit: BOOKMARKS_MAX });
    assert_eq!(model.run(Command::CreateBookmark(bookmark("one-more", topic, 10, 1_000))), (full, 0));
    // Once b7 expired, it makes room.
    let (response, writes) = model.run(Command::CreateBookmark(bookmark("one-more", topic, 60, 1_000)));
    assert!(matches!(response, Response::BookmarkCreated(_)), "{response:?}");
    assert_eq!(writes, 2, "b7 deleted, one-more put");
    assert!(!model.catalog.bookmarks.contains_key("b7"));
    assert_eq!(model.catalog.bookmarks.len(), BOOKMARKS_MAX);
}
