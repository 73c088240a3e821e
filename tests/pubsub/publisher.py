"""The official Pub/Sub client's Publisher against a real ferryd.

Run by tests/tests/pubsub_compat.rs with PUBSUB_EMULATOR_HOST set to the
node and FERRY_PROJECT naming the project to use. Prints one line per
check and "ok" at the end; any failure raises (exit status 1).
"""

import os

from google.api_core import exceptions
from google.cloud import pubsub_v1

project = os.environ["FERRY_PROJECT"]
publisher = pubsub_v1.PublisherClient()
topic = publisher.topic_path(project, "orders")


def expect(error, call, what):
    try:
        call()
    except error:
        print(f"{what}: {error.__name__}")
        return
    raise AssertionError(f"{what}: expected {error.__name__}")


# Admin: create, get, list; errors with the codes the client expects.
created = publisher.create_topic(request={"name": topic})
assert created.name == topic, created
print("create_topic:", created.name)
expect(exceptions.AlreadyExists, lambda: publisher.create_topic(request={"name": topic}), "create twice")
assert publisher.get_topic(request={"topic": topic}).name == topic
missing = publisher.topic_path(project, "missing")
expect(exceptions.NotFound, lambda: publisher.get_topic(request={"topic": missing}), "get a missing topic")
bad = publisher.topic_path(project, "a~b~c")
expect(exceptions.InvalidArgument, lambda: publisher.create_topic(request={"name": bad}), "an id Ferry cannot hold")
other = publisher.topic_path("elsewhere-" + project, "orders")
publisher.create_topic(request={"name": other})
for i in range(3):
    publisher.create_topic(request={"name": publisher.topic_path(project, f"extra-{i}")})
listed = [t.name for t in publisher.list_topics(request={"project": f"projects/{project}", "page_size": 2})]
assert sorted(listed) == sorted([topic] + [publisher.topic_path(project, f"extra-{i}") for i in range(3)]), listed
print("list_topics (pages of 2, one project only):", len(listed))

# Labels are kept; UpdateTopic changes the fields its mask names only.
labelled = publisher.topic_path(project, "labelled")
made = publisher.create_topic(request={"name": labelled, "labels": {"team": "data"}})
assert dict(made.labels) == {"team": "data"}, made
changed = publisher.update_topic(request={
    "topic": {"name": labelled, "labels": {"team": "ops", "tier": "1"}, "message_retention_duration": {"seconds": 3600}},
    "update_mask": {"paths": ["labels"]},
})
assert dict(changed.labels) == {"team": "ops", "tier": "1"}, changed
assert changed.message_retention_duration.total_seconds() != 3600, "retention was not in the mask"
changed = publisher.update_topic(request={
    "topic": {"name": labelled, "message_retention_duration": {"seconds": 3600}},
    "update_mask": {"paths": ["message_retention_duration"]},
})
assert changed.message_retention_duration.total_seconds() == 3600, changed
assert dict(publisher.get_topic(request={"topic": labelled}).labels) == {"team": "ops", "tier": "1"}
expect(exceptions.InvalidArgument, lambda: publisher.update_topic(request={
    "topic": {"name": labelled, "kms_key_name": "k"}, "update_mask": {"paths": ["kms_key_name"]}}), "update kms_key_name")
expect(exceptions.InvalidArgument, lambda: publisher.update_topic(request={
    "topic": {"name": labelled, "labels": {"Team": "x"}}, "update_mask": {"paths": ["labels"]}}), "an upper-case label")
expect(exceptions.NotFound, lambda: publisher.update_topic(request={
    "topic": {"name": missing, "labels": {"a": "b"}}, "update_mask": {"paths": ["labels"]}}), "update a missing topic")
print("update_topic: labels and retention, by mask")
publisher.delete_topic(request={"topic": labelled})

# Publish with attributes: distinct ids, the futures resolve.
futures = [publisher.publish(topic, f"m{i}".encode(), origin="python", n=str(i)) for i in range(100)]
ids = [f.result(timeout=60) for f in futures]
assert len(set(ids)) == 100, ids
assert all(i.isdigit() for i in ids), ids
print("published 100, distinct ids")

# Ordering keys: the ordered publisher sends each key's messages in order.
ordered = pubsub_v1.PublisherClient(
    publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
)
keyed = [ordered.publish(topic, f"{key}-{i}".encode(), ordering_key=key) for i in range(20) for key in ("k1", "k2")]
for f in keyed:
    f.result(timeout=60)
print("published 40 with ordering keys")

# Publishing to a missing topic fails NotFound (not retried).
expect(exceptions.NotFound, lambda: publisher.publish(missing, b"x").result(timeout=60), "publish to a missing topic")

subs = list(publisher.list_topic_subscriptions(request={"topic": topic}))
print("list_topic_subscriptions:", subs)
assert publisher.topic_path(project, "orders") == topic
assert list(publisher.list_topic_snapshots(request={"topic": topic})) == []

publisher.delete_topic(request={"topic": other})
expect(exceptions.NotFound, lambda: publisher.get_topic(request={"topic": other}), "get a deleted topic")
print("ok")
