use super::*;
use crate::clock::SystemClock;
use crate::domain::{MessageBody, PublishBatch};

/// Routes of a node that hosts no group: a publish looks for its group's
/// leader until the commit timeout (1 s, on the test's paused clock).
fn routes() -> GroupRoutes {
    GroupRoutes::new(Arc::new(Groups::default()), Network::new(None), 1, Duration::from_secs(1), Arc::new(SystemClock))
}

fn batch() -> PublishBatch {
    PublishBatch {
        topic_id: 1,
        partition: 0,
        publish_time_us: 0,
        messages: vec![MessageBody { data: "m".into(), ..MessageBody::default() }],
        producer: None,
    }
}

/// A keyless publish weighs each group by its batches in flight, so a batch
/// that stops counting must stop on every path: a request cancelled before
/// or while its batch runs (a client that hung up) and a batch that failed.
#[tokio::test(start_paused = true)]
async fn a_publish_counts_against_its_group_until_it_ends_or_is_dropped() {
    let routes = routes();
    let cancelled = routes.publish(3, batch());
    let mut polled = Box::pin(routes.publish(3, batch()));
    let running = routes.publish(3, batch());
    assert_eq!(routes.publish_loads().of(3), 3, "counted from the call, before any poll");
    drop(cancelled);
    assert_eq!(routes.publish_loads().of(3), 2, "a dropped publish stopped counting");
    // Polled once, it looked for the group's leader and waits to look
    // again: dropped then, it stops counting too.
    assert!(futures::poll!(polled.as_mut()).is_pending());
    drop(polled);
    assert_eq!(routes.publish_loads().of(3), 1, "a publish dropped while running stopped counting");
    // No leader of group 3 is known here: once the commit timeout passes,
    // the batch fails, and stops counting.
    let error = running.await.expect_err("published to a group without a leader");
    assert!(matches!(error, ApiError::Unavailable(_)), "{error:?}");
    assert_eq!(routes.publish_loads().of(3), 0, "a failed publish stopped counting");
}
