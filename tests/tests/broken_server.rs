//! The client against a server that breaks the protocol or its own flow
//! control. The real server never does the first and does the second only in
//! moments hard to stage (a seek, leases past `max_lease_extension`, a data
//! group's new leader), so this is a fake Subscriber service on a real
//! socket: only the calls a subscriber makes answer, with what the test
//! gives them.

use std::time::Duration;

use ferry_client::{Client, Error, SubscriberSettings};
use ferry_proto::v1 as api;
use ferry_proto::v1::subscriber_server::{Subscriber, SubscriberServer};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

type Answer<T> = Result<Response<T>, Status>;

/// Serves any subscription with a 10 s ack deadline and the StreamingPull
/// responses `delivered`, all at once; the stream's requests go to
/// `requests`.
struct Scripted {
    delivered: Vec<api::StreamingPullResponse>,
    requests: mpsc::UnboundedSender<api::StreamingPullRequest>,
}

fn unimplemented<T>() -> Answer<T> {
    Err(Status::unimplemented("not in this fake"))
}

#[tonic::async_trait]
impl Subscriber for Scripted {
    async fn get_subscription(&self, request: Request<api::GetSubscriptionRequest>) -> Answer<api::Subscription> {
        let settings = api::SubscriptionSettings { ack_deadline_seconds: 10, ..Default::default() };
        let name = request.into_inner().name;
        Ok(Response::new(api::Subscription { name, topic: "t".into(), settings: Some(settings), ..Default::default() }))
    }

    type StreamingPullStream = ReceiverStream<Result<api::StreamingPullResponse, Status>>;

    async fn streaming_pull(
        &self,
        request: Request<Streaming<api::StreamingPullRequest>>,
    ) -> Answer<Self::StreamingPullStream> {
        let (responses, stream) = mpsc::channel(self.delivered.len().max(1));
        for response in &self.delivered {
            responses.send(Ok(response.clone())).await.expect("room for every response");
        }
        let (mut incoming, requests) = (request.into_inner(), self.requests.clone());
        tokio::spawn(async move {
            // The stream stays open (the responses' sender lives here) for
            // as long as the client sends.
            let _open = responses;
            while let Some(Ok(request)) = incoming.next().await {
                let _ = requests.send(request);
            }
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    async fn create_subscription(&self, _: Request<api::CreateSubscriptionRequest>) -> Answer<api::Subscription> {
        unimplemented()
    }
    async fn list_subscriptions(
        &self,
        _: Request<api::ListSubscriptionsRequest>,
    ) -> Answer<api::ListSubscriptionsResponse> {
        unimplemented()
    }
    async fn delete_subscription(
        &self,
        _: Request<api::DeleteSubscriptionRequest>,
    ) -> Answer<api::DeleteSubscriptionResponse> {
        unimplemented()
    }
    async fn update_subscription(&self, _: Request<api::UpdateSubscriptionRequest>) -> Answer<api::Subscription> {
        unimplemented()
    }
    async fn pull(&self, _: Request<api::PullRequest>) -> Answer<api::PullResponse> {
        unimplemented()
    }
    async fn acknowledge(&self, _: Request<api::AcknowledgeRequest>) -> Answer<api::AcknowledgeResponse> {
        unimplemented()
    }
    async fn modify_ack_deadline(
        &self,
        _: Request<api::ModifyAckDeadlineRequest>,
    ) -> Answer<api::ModifyAckDeadlineResponse> {
        unimplemented()
    }
    async fn seek(&self, _: Request<api::SeekRequest>) -> Answer<api::SeekResponse> {
        unimplemented()
    }
    async fn create_bookmark(&self, _: Request<api::CreateBookmarkRequest>) -> Answer<api::Bookmark> {
        unimplemented()
    }
    async fn get_bookmark(&self, _: Request<api::GetBookmarkRequest>) -> Answer<api::Bookmark> {
        unimplemented()
    }
    async fn list_bookmarks(&self, _: Request<api::ListBookmarksRequest>) -> Answer<api::ListBookmarksResponse> {
        unimplemented()
    }
    async fn delete_bookmark(&self, _: Request<api::DeleteBookmarkRequest>) -> Answer<api::DeleteBookmarkResponse> {
        unimplemented()
    }
}

fn received(ack_id: &str, data: Option<&str>) -> api::ReceivedMessage {
    let message = data.map(|data| api::Message { data: data.as_bytes().to_vec().into(), ..Default::default() });
    api::ReceivedMessage { ack_id: ack_id.into(), message, ..Default::default() }
}

/// Starts the fake on a free port; returns a client of it and the requests
/// its stream receives.
async fn serve(
    delivered: Vec<api::StreamingPullResponse>,
) -> (Client, mpsc::UnboundedReceiver<api::StreamingPullRequest>) {
    let (requests, seen) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tonic::transport::Server::builder()
        .add_service(SubscriberServer::new(Scripted { delivered, requests }))
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
    (Client::connect(&addr.to_string()).await.expect("connect"), seen)
}

/// The ack ids the stream's requests give back (a deadline change to 0),
/// read until `done` holds of them or 10 s pass.
async fn given_back_until(
    seen: &mut mpsc::UnboundedReceiver<api::StreamingPullRequest>,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut given_back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done(&given_back) {
            let request = seen.recv().await.expect("the stream's requests");
            for change in request.deadline_changes.into_iter().filter(|change| change.seconds == 0) {
                given_back.extend(change.ack_ids);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("given back within 10 s: {given_back:?}"));
    given_back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_without_its_body_ends_the_subscriber_and_goes_back_with_the_rest() {
    let delivered = api::StreamingPullResponse {
        messages: vec![received("good", Some("one")), received("broken", None), received("after", Some("three"))],
        ..Default::default()
    };
    let (client, mut seen) = serve(vec![delivered]).await;
    let mut subscriber = client.subscribe("s", SubscriberSettings::default()).await.expect("subscribe");
    let good = subscriber.next().await.expect("a message").expect("the one before the broken one");
    assert_eq!(good.message.message.data.as_ref(), b"one");
    let error = subscriber.next().await.expect("the error").expect_err("the broken message");
    assert!(matches!(&error, Error::Protocol(text) if text.contains("without its `message` field")), "{error:?}");

    // Everything it did not hand over goes back at once: the broken
    // message's delivery too (before, only its lease running out freed it).
    let back = |ids: &[String]| ["broken", "after"].iter().all(|id| ids.iter().any(|given| given == id));
    given_back_until(&mut seen, back).await;
    let after = tokio::time::timeout(Duration::from_secs(10), subscriber.next()).await.expect("the subscriber ends");
    assert!(after.is_none(), "nothing after the error");
    // Held, never settled, to the end: the broken delivery went back without
    // the application settling anything.
    drop(good);
}

/// A response of `count` messages with ack ids `<name>0`, `<name>1`, …
fn window(name: &str, count: usize) -> api::StreamingPullResponse {
    let messages = (0..count).map(|i| received(&format!("{name}{i}"), Some(name))).collect();
    api::StreamingPullResponse { messages, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_waiting_past_two_windows_go_back_oldest_first_and_the_rest_follow_in_order() {
    // A limit of 10, and a server offering four windows of 10 at once (as
    // one does after a seek or a group's new leader, while the application
    // still holds what it had): the first is handed over, two wait, and
    // the oldest waiting one goes back rather than grow the queue.
    let limit = 10;
    let delivered = ["a", "b", "c", "d"].map(|name| window(name, limit)).to_vec();
    let (client, mut seen) = serve(delivered).await;
    let settings = SubscriberSettings { max_outstanding_messages: limit as u32, ..Default::default() };
    let mut subscriber = client.subscribe("s", settings).await.expect("subscribe");
    let mut held = Vec::new();
    for _ in 0..limit {
        held.push(subscriber.next().await.expect("a message").expect("window a"));
    }
    assert!(held.iter().all(|delivered| delivered.message.message.data.as_ref() == b"a"));

    let b_ids: Vec<String> = (0..limit).map(|i| format!("b{i}")).collect();
    let given_back = given_back_until(&mut seen, |ids| b_ids.iter().all(|id| ids.contains(id))).await;
    assert_eq!(given_back, b_ids, "window b, and nothing else, goes back");

    // Settling window a makes room: c comes next, then d, never b.
    held.drain(..).for_each(|delivered| delivered.ack());
    for expected in ["c", "d"] {
        for _ in 0..limit {
            let delivered = subscriber.next().await.expect("a message").expect("waiting windows");
            assert_eq!(delivered.message.message.data.as_ref(), expected.as_bytes());
            delivered.ack();
        }
    }
    subscriber.close().await;
    let mut acked = Vec::new();
    while let Ok(request) = seen.try_recv() {
        acked.extend(request.ack_ids);
    }
    assert!(!acked.iter().any(|id| id.starts_with('b')), "nothing of window b was acked: {acked:?}");
}
