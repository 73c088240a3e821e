"""The official Pub/Sub client's Subscriber (unary calls) against a real
ferryd: subscription admin, pull, ack, nack and redelivery, deadlines,
seek to a time, snapshots and seek to one, and dead-lettering with
delivery attempts.

Run by tests/tests/pubsub_compat.rs like publisher.py.
"""

import os
import time

from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.protobuf import timestamp_pb2

project = os.environ["FERRY_PROJECT"]
publisher = pubsub_v1.PublisherClient()
subscriber = pubsub_v1.SubscriberClient()
topic = publisher.topic_path(project, "events")
dead = publisher.topic_path(project, "events-dead")
sub = subscriber.subscription_path(project, "events-sub")


def expect(error, call, what):
    try:
        call()
    except error:
        print(f"{what}: {error.__name__}")
        return
    raise AssertionError(f"{what}: expected {error.__name__}")


def pull_all(subscription, count, deadline=30):
    """Pulls until `count` messages arrived; returns them."""
    got = []
    give_up = time.time() + deadline
    while len(got) < count:
        assert time.time() < give_up, f"only {len(got)} of {count} messages"
        response = subscriber.pull(request={"subscription": subscription, "max_messages": count - len(got)})
        got.extend(response.received_messages)
    return got


publisher.create_topic(request={"name": topic})
publisher.create_topic(request={"name": dead})

# Admin.
created = subscriber.create_subscription(request={"name": sub, "topic": topic, "ack_deadline_seconds": 10})
assert created.name == sub and created.topic == topic and created.ack_deadline_seconds == 10, created
expect(exceptions.AlreadyExists, lambda: subscriber.create_subscription(request={"name": sub, "topic": topic}), "create twice")
assert subscriber.get_subscription(request={"subscription": sub}).topic == topic
listed = [s.name for s in subscriber.list_subscriptions(request={"project": f"projects/{project}"})]
assert listed == [sub], listed
assert list(publisher.list_topic_subscriptions(request={"topic": topic})) == [sub]
bad = subscriber.subscription_path(project, "filtered")
expect(exceptions.InvalidArgument, lambda: subscriber.create_subscription(
    request={"name": bad, "topic": topic, "filter": "attributes.x = \"1\""}), "a filter")
expect(exceptions.InvalidArgument, lambda: subscriber.create_subscription(
    request={"name": bad, "topic": topic, "push_config": {"push_endpoint": "https://example.com/push"}}), "push")
missing = subscriber.subscription_path(project, "missing")
expect(exceptions.NotFound, lambda: subscriber.get_subscription(request={"subscription": missing}), "get missing")
print("subscription admin ok")

# UpdateSubscription changes what its mask names; a policy named but left
# out is removed.
changed = subscriber.update_subscription(request={
    "subscription": {"name": sub, "ack_deadline_seconds": 30, "labels": {"owner": "billing"},
                     "retry_policy": {"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 5}}},
    "update_mask": {"paths": ["ack_deadline_seconds", "labels"]},
})
assert changed.ack_deadline_seconds == 30 and dict(changed.labels) == {"owner": "billing"}, changed
assert "retry_policy" not in changed, "retry_policy was not in the mask"
changed = subscriber.update_subscription(request={
    "subscription": {"name": sub,
                     "retry_policy": {"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 5}}},
    "update_mask": {"paths": ["retry_policy"]},
})
assert changed.retry_policy.maximum_backoff.total_seconds() == 5, changed
assert changed.ack_deadline_seconds == 30, changed
changed = subscriber.update_subscription(request={
    "subscription": {"name": sub, "ack_deadline_seconds": 10},
    "update_mask": {"paths": ["retry_policy", "ack_deadline_seconds"]},
})
assert "retry_policy" not in changed and changed.ack_deadline_seconds == 10, changed
got = subscriber.get_subscription(request={"subscription": sub})
assert got.ack_deadline_seconds == 10 and dict(got.labels) == {"owner": "billing"}, got
expect(exceptions.InvalidArgument, lambda: subscriber.update_subscription(request={
    "subscription": {"name": sub, "filter": "x"}, "update_mask": {"paths": ["filter"]}}), "update the filter")
expect(exceptions.InvalidArgument, lambda: subscriber.update_subscription(request={
    "subscription": {"name": sub, "ack_deadline_seconds": 5000}, "update_mask": {"paths": ["ack_deadline_seconds"]}}),
    "an ack deadline over 600 s")
expect(exceptions.NotFound, lambda: subscriber.update_subscription(request={
    "subscription": {"name": missing, "ack_deadline_seconds": 20}, "update_mask": {"paths": ["ack_deadline_seconds"]}}),
    "update a missing subscription")
print("update_subscription ok")

# Pull what was published, with ids, times and attributes; ack half, nack the rest.
before = time.time()
ids = [publisher.publish(topic, f"e{i}".encode(), n=str(i)).result(timeout=60) for i in range(10)]
got = pull_all(sub, 10)
assert sorted(m.message.message_id for m in got) == sorted(ids), (ids, got)
for m in got:
    assert m.message.attributes["n"] == m.message.data.decode()[1:]
    assert before - 5 <= m.message.publish_time.timestamp() <= time.time() + 5
    assert m.delivery_attempt == 0, "no dead-letter policy: no attempt count, as the service does"
acked, nacked = got[:5], got[5:]
subscriber.acknowledge(request={"subscription": sub, "ack_ids": [m.ack_id for m in acked]})
subscriber.modify_ack_deadline(request={"subscription": sub, "ack_ids": [m.ack_id for m in nacked], "ack_deadline_seconds": 0})
again = pull_all(sub, 5)
assert sorted(m.message.message_id for m in again) == sorted(m.message.message_id for m in nacked)
subscriber.acknowledge(request={"subscription": sub, "ack_ids": [m.ack_id for m in again]})
empty = subscriber.pull(request={"subscription": sub, "max_messages": 10, "return_immediately": True})
assert len(empty.received_messages) == 0, empty
print("pull, ack, nack and redelivery ok")

# Seek to a time: what was published from it on comes back, acked or not.
time.sleep(0.05)
mark = timestamp_pb2.Timestamp()
mark.GetCurrentTime()
time.sleep(0.05)
later = [publisher.publish(topic, f"l{i}".encode()).result(timeout=60) for i in range(3)]
subscriber.acknowledge(request={"subscription": sub, "ack_ids": [m.ack_id for m in pull_all(sub, 3)]})
subscriber.seek(request={"subscription": sub, "time": mark})
replayed = pull_all(sub, 3)
assert sorted(m.message.message_id for m in replayed) == sorted(later), (later, replayed)
subscriber.acknowledge(request={"subscription": sub, "ack_ids": [m.ack_id for m in replayed]})
print("seek to a time ok")

# Snapshots: the subscription's ack state saved, to seek back to.
snap = subscriber.snapshot_path(project, "before-batch")
batch = [publisher.publish(topic, f"s{i}".encode()).result(timeout=60) for i in range(4)]
made = subscriber.create_snapshot(request={"name": snap, "subscription": sub, "labels": {"why": "test"}})
assert made.name == snap and made.topic == topic and dict(made.labels) == {"why": "test"}, made
assert made.expire_time.timestamp() > time.time() + 3000, made
expect(exceptions.AlreadyExists, lambda: subscriber.create_snapshot(request={"name": snap, "subscription": sub}),
       "create a snapshot twice")
assert subscriber.get_snapshot(request={"snapshot": snap}).topic == topic
assert [x.name for x in subscriber.list_snapshots(request={"project": f"projects/{project}"})] == [snap]
assert list(publisher.list_topic_snapshots(request={"topic": topic})) == [snap]
subscriber.acknowledge(request={"subscription": sub, "ack_ids": [m.ack_id for m in pull_all(sub, 4)]})
empty = subscriber.pull(request={"subscription": sub, "max_messages": 10, "return_immediately": True})
assert len(empty.received_messages) == 0, empty
subscriber.seek(request={"subscription": sub, "snapshot": snap})
again = pull_all(sub, 4)
assert sorted(m.message.message_id for m in again) == sorted(batch), (batch, again)
subscriber.acknowledge(request={"subscription": sub, "ack_ids": [m.ack_id for m in again]})
elsewhere = publisher.topic_path(project, "elsewhere")
publisher.create_topic(request={"name": elsewhere})
elsewhere_sub = subscriber.subscription_path(project, "elsewhere-sub")
subscriber.create_subscription(request={"name": elsewhere_sub, "topic": elsewhere})
foreign = subscriber.snapshot_path(project, "elsewhere-snap")
subscriber.create_snapshot(request={"name": foreign, "subscription": elsewhere_sub})
expect(exceptions.InvalidArgument, lambda: subscriber.seek(request={"subscription": sub, "snapshot": foreign}),
       "seek to another topic's snapshot")
unnamed = subscriber.create_snapshot(request={"name": "", "subscription": sub})
assert unnamed.name.startswith(f"projects/{project}/snapshots/snapshot-"), unnamed
missing_topic = publisher.topic_path(project, "no-such-topic")
expect(exceptions.NotFound, lambda: list(publisher.list_topic_snapshots(request={"topic": missing_topic})),
       "snapshots of a missing topic")
for name in (snap, foreign, unnamed.name):
    subscriber.delete_snapshot(request={"snapshot": name})
expect(exceptions.NotFound, lambda: subscriber.get_snapshot(request={"snapshot": snap}), "get a deleted snapshot")
expect(exceptions.NotFound, lambda: subscriber.seek(request={"subscription": sub, "snapshot": snap}),
       "seek to a deleted snapshot")
publisher.delete_topic(request={"topic": elsewhere})
print("snapshots and seek to one ok")

# Dead-lettering after max_delivery_attempts, counting attempts.
lettered = subscriber.subscription_path(project, "events-lettered")
subscriber.create_subscription(request={
    "name": lettered, "topic": topic,
    "dead_letter_policy": {"dead_letter_topic": dead, "max_delivery_attempts": 5},
})
graveyard = subscriber.subscription_path(project, "events-graveyard")
subscriber.create_subscription(request={"name": graveyard, "topic": dead})
publisher.publish(topic, b"poison").result(timeout=60)
attempts = []
give_up = time.time() + 60
while len(attempts) < 5:
    assert time.time() < give_up, attempts
    for m in subscriber.pull(request={"subscription": lettered, "max_messages": 10}).received_messages:
        if m.message.data == b"poison":
            attempts.append(m.delivery_attempt)
            subscriber.modify_ack_deadline(request={"subscription": lettered, "ack_ids": [m.ack_id], "ack_deadline_seconds": 0})
        else:
            subscriber.acknowledge(request={"subscription": lettered, "ack_ids": [m.ack_id]})
assert attempts == [1, 2, 3, 4, 5], attempts
# The next delivery would be the sixth: it goes to the dead-letter topic instead.
moved = []
while not moved:
    assert time.time() < give_up, "never dead-lettered"
    for m in subscriber.pull(request={"subscription": lettered, "max_messages": 10, "return_immediately": True}).received_messages:
        assert m.message.data != b"poison", "delivered a sixth time"
    moved = subscriber.pull(request={"subscription": graveyard, "max_messages": 10, "return_immediately": True}).received_messages
assert moved[0].message.data == b"poison", moved
# The attributes Pub/Sub puts on a forwarded message.
dead_attributes = moved[0].message.attributes
assert dead_attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5", dead_attributes
assert dead_attributes["CloudPubSubDeadLetterSourceSubscription"] == "events-lettered", dead_attributes
assert dead_attributes["CloudPubSubDeadLetterSourceSubscriptionProject"] == project, dead_attributes
assert dead_attributes["CloudPubSubDeadLetterSourceTopicPublishTime"].startswith("20"), dead_attributes
print("dead-lettered after", attempts[-1], "attempts")

subscriber.delete_subscription(request={"subscription": sub})
expect(exceptions.NotFound, lambda: subscriber.get_subscription(request={"subscription": sub}), "get deleted")
print("ok")
