"""The container image (deploy/container): lint the Dockerfile and the pod
scripts, then run the image as the Dockerfile declares it (ENTRYPOINT,
CMD, ENV, USER's data volume), with its secrets mounted where its settings
look for them, against the binaries built here. No Docker daemon is here,
so the image is laid out as a directory instead of built."""

import re
import signal
import subprocess
import tomllib
import urllib.request
from pathlib import Path

from common import (
    DEPLOY,
    Hosts,
    Process,
    Secrets,
    fail,
    log,
    publish_and_pull,
    refuses_strangers,
    run,
    secured_config,
    serving,
    tool,
    use,
    wait_listening,
)
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

    def environment(self, env):
        """The image's ENV under `env` (the container's own settings win), in
        a clean environment as in a container."""
        merged = {**self.image.env, **env}
        environment = {key: self.localize(value) for key, value in merged.items()}
        environment["PATH"] = f"{self.path('/usr/local/bin')}:/usr/bin:/bin"
        environment["HOSTNAME"] = self.name
        return environment

    def start(self, argv, env, logs):
        """Runs `argv` in the container, as its main process."""
        cwd = self.path(self.image.workdir)
        cwd.mkdir(parents=True, exist_ok=True)
        words = [self.localize(word) for word in argv]
        return Process(self.title, words, self.environment(env), cwd, Path(logs) / f"{self.title}.log")

    def exec(self, argv, env):
        """Runs `argv` in the container to its end (`docker exec`, or a
        kubelet's exec probe): (exit code, output)."""
        done = subprocess.run(
            [self.localize(word) for word in argv], env=self.environment(env), cwd=self.path(self.image.workdir),
            capture_output=True, text=True, timeout=30, check=False,
        )
        return done.returncode, done.stdout + done.stderr

    def settings(self, argv, env):
        """What ferryd started as `argv` would run with: `ferryd
        --print-config` with the same arguments and environment."""
        words = [self.localize(word) for word in argv]
        if Path(words[0]).name != "ferryd":
            words[0] = str(Path(words[0]).parent / "ferryd")
        return tomllib.loads(run([*words, "--print-config"], env=self.environment(env)).stdout)

    def mount(self, source, container_path, mode=0o400):
        """A file mounted into the container (a secret)."""
        target = self.path(container_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(source).read_bytes())
        target.chmod(mode)


def secret_files(secrets, cert, key):
    """Which of the operator's files each security setting wants."""
    return {"tls_cert": cert, "tls_key": key, "tls_ca": secrets.ca, "auth_file": secrets.auth,
            "peer_token_file": secrets.peer_token}


def stop_timeout(signal_name):
    if not hasattr(signal.Signals, signal_name):
        fail(f"STOPSIGNAL {signal_name} is not a signal")
    return getattr(signal.Signals, signal_name)


def lint():
    run([tool("hadolint"), "--failure-threshold", "info", DOCKERFILE])
    run([tool("shellcheck"), DEPLOY / "container" / "ferryd-pod", DEPLOY / "container" / "ferryd-ready",
         DEPLOY / "make-secrets"])
    log("  hadolint and shellcheck (ferryd-pod, ferryd-ready, make-secrets): clean")


def check(tmp):
    lint()
    image = Image()
    if set(image.expose) != {7070, 9470}:
        fail(f"EXPOSE {image.expose}: the image serves gRPC on 7070 and metrics on 9470")
    image.uid()
    hosts = Hosts(["ferry"], image.expose)
    container = Container(image, "ferry", hosts, Path(tmp) / "ferry")
    secrets = Secrets(Path(tmp) / "secrets")
    use(secrets)
    # As `docker run -v SECRETS:/run/secrets IMAGE` starts it: ENTRYPOINT +
    # CMD, the image's ENV, the secrets where the image's settings want them.
    argv = image.entrypoint + image.cmd
    settings = container.settings(argv, {})
    cert, key = secrets.cert("ferry", ["ferry", hosts.ips["ferry"]])
    mounted = set()
    for setting, source in secret_files(secrets, cert, key).items():
        path = settings.get(setting) or fail(f"the image sets no {setting}: it would not run TLS with tokens")
        container.mount(source, path.removeprefix(str(container.root)))
        mounted.add(str(Path(path.removeprefix(str(container.root))).parent))
    node = container.start(argv, {}, tmp)
    try:
        grpc_addr, metrics_addr = hosts.addr("ferry", 7070), hosts.addr("ferry", 9470)
        secured_config(node, hosts)
        wait_listening(node, grpc_addr)
        serving(grpc_addr, "ferry")
        publish_and_pull(grpc_addr, "container-smoke", ["one", "two", "three"])
        refuses_strangers(grpc_addr, grpc_addr, "ferry")
        with urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=10) as answer:
            if b"ferry_build_info" not in answer.read():
                fail(f"no ferry_build_info at http://{metrics_addr}/metrics")
        data = container.path("/var/lib/ferry/data")
        if not data.is_dir() or not any(data.iterdir()):
            fail(f"the node's data is not in the image's volume ({data})")
        # `docker stop` waits 10 s by default before SIGKILL.
        took = node.stop(stop_timeout(image.stopsignal), 10)
        log(f"  ENTRYPOINT {image.entrypoint} + CMD {image.cmd}, secrets mounted in {', '.join(sorted(mounted))}: "
            f"one node serves TLS with tokens (not --insecure-plaintext), health SERVING, publish/pull, "
            f"no token, plaintext and a wrong name refused, /metrics; clean exit {took:.1f}s after {image.stopsignal}")
    finally:
        node.kill()
