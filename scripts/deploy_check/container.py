"""The container image (deploy/container): lint the Dockerfile and the pod
start script, then run the image as the Dockerfile declares it (ENTRYPOINT,
CMD, ENV, USER's data volume) against the binaries built here. No Docker
daemon is here, so the image is laid out as a directory instead of built."""

import re
import signal
import urllib.request
from pathlib import Path

from common import DEPLOY, Hosts, Process, fail, health, log, publish_and_pull, run, tool, wait_listening
from dockerfile import DOCKERFILE, Image

# Paths under these are inside the container: on this machine they live under
# the container's root directory.
CONTAINER_PATH = re.compile(r"(?<![\w./-])(/(?:etc|var|usr|opt|srv|home|run)(?=/|\b))")


class Container:
    """One container of the image: its own root directory (the image's files
    plus its volumes) and a process started as the container would be."""

    def __init__(self, image, name, hosts, root, title=None):
        self.image, self.name, self.hosts, self.root = image, name, hosts, Path(root)
        self.title = title or name
        image.lay_out(self.root, self.localize)

    def localize(self, text):
        text = CONTAINER_PATH.sub(lambda m: str(self.root) + m.group(1), text)
        return self.hosts.localize(text, own=self.name)

    def path(self, container_path):
        return Path(str(self.root) + container_path)

    def start(self, argv, env, logs):
        """Runs `argv` with the image's ENV under `env` (the container's own
        settings win), in a clean environment as in a container."""
        merged = {**self.image.env, **env}
        environment = {key: self.localize(value) for key, value in merged.items()}
        environment["PATH"] = f"{self.path('/usr/local/bin')}:/usr/bin:/bin"
        environment["HOSTNAME"] = self.name
        cwd = self.path(self.image.workdir)
        cwd.mkdir(parents=True, exist_ok=True)
        words = [self.localize(word) for word in argv]
        return Process(self.title, words, environment, cwd, Path(logs) / f"{self.title}.log")


def stop_timeout(signal_name):
    if not hasattr(signal.Signals, signal_name):
        fail(f"STOPSIGNAL {signal_name} is not a signal")
    return getattr(signal.Signals, signal_name)


def lint():
    run([tool("hadolint"), "--failure-threshold", "info", DOCKERFILE])
    run([tool("shellcheck"), DEPLOY / "container" / "ferryd-pod"])
    log("  hadolint and shellcheck: clean")


def check(tmp):
    lint()
    image = Image()
    if set(image.expose) != {7070, 9470}:
        fail(f"EXPOSE {image.expose}: the image serves gRPC on 7070 and metrics on 9470")
    image.uid()
    hosts = Hosts(["ferry"], image.expose)
    container = Container(image, "ferry", hosts, Path(tmp) / "ferry")
    # As `docker run IMAGE` starts it: ENTRYPOINT + CMD, the image's ENV.
    node = container.start(image.entrypoint + image.cmd, {}, tmp)
    try:
        grpc_addr, metrics_addr = hosts.addr("ferry", 7070), hosts.addr("ferry", 9470)
        wait_listening(node, grpc_addr)
        if health(grpc_addr) != "SERVING":
            fail(f"the container's node is not SERVING: {health(grpc_addr)}")
        publish_and_pull(grpc_addr, "container-smoke", ["one", "two", "three"])
        with urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=10) as answer:
            if b"ferry_build_info" not in answer.read():
                fail(f"no ferry_build_info at http://{metrics_addr}/metrics")
        data = container.path("/var/lib/ferry/data")
        if not data.is_dir() or not any(data.iterdir()):
            fail(f"the node's data is not in the image's volume ({data})")
        # `docker stop` waits 10 s by default before SIGKILL.
        took = node.stop(stop_timeout(image.stopsignal), 10)
        log(f"  ENTRYPOINT {image.entrypoint} + CMD {image.cmd}: one node serves, "
            f"health SERVING, publish/pull, /metrics; clean exit {took:.1f}s after {image.stopsignal}")
    finally:
        node.kill()
