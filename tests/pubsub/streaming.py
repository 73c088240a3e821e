"""The official Pub/Sub client's streaming subscriber (`subscribe()`,
StreamingPull) against a real ferryd: everything arrives once when acked,
a nacked message comes back, each ordering key's messages arrive in order,
and flow control bounds what the callback holds at once.

Run by tests/tests/pubsub_compat.rs like publisher.py.
"""

import os
import threading
import time

from google.cloud import pubsub_v1

project = os.environ["FERRY_PROJECT"]
publisher = pubsub_v1.PublisherClient(
    publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
)
subscriber = pubsub_v1.SubscriberClient()
topic = publisher.topic_path(project, "stream")
sub = subscriber.subscription_path(project, "stream-sub")
publisher.create_topic(request={"name": topic})
subscriber.create_subscription(request={"name": sub, "topic": topic, "enable_message_ordering": True})

keys = ["a", "b", "c"]
expected = {f"{key}-{i}" for key in keys for i in range(30)}
plain = {f"p-{i}" for i in range(60)}
for i in range(30):
    for key in keys:
        publisher.publish(topic, f"{key}-{i}".encode(), ordering_key=key)
futures = [publisher.publish(topic, name.encode()) for name in sorted(plain)]
for f in futures:
    f.result(timeout=60)

lock = threading.Lock()
seen = {}
order = {key: [] for key in keys}
nacked = set()
holding = 0
most_held = 0
done = threading.Event()


def callback(message):
    global holding, most_held
    data = message.data.decode()
    with lock:
        holding += 1
        most_held = max(most_held, holding)
    time.sleep(0.01)
    with lock:
        holding -= 1
        if data.startswith("p-") and data.endswith("7") and data not in nacked:
            nacked.add(data)
            message.nack()
            return
        seen[data] = seen.get(data, 0) + 1
        if message.ordering_key:
            order[message.ordering_key].append(int(data.split("-")[1]))
        if set(seen) >= expected | plain:
            done.set()
    message.ack()


flow = pubsub_v1.types.FlowControl(max_messages=5)
streaming = subscriber.subscribe(sub, callback=callback, flow_control=flow)
try:
    assert done.wait(timeout=90), f"only {len(seen)} of {len(expected | plain)} arrived"
    time.sleep(3)  # anything acked must not come back
finally:
    streaming.cancel()

assert set(seen) == expected | plain, set(seen) ^ (expected | plain)
assert all(count == 1 for count in seen.values()), {k: v for k, v in seen.items() if v != 1}
print("every message once when acked; nacked ones came back:", len(nacked))
for key in keys:
    assert order[key] == list(range(30)), (key, order[key])
print("each ordering key in order")
assert most_held <= 5, most_held
print("flow control held at most", most_held)
print("ok")
