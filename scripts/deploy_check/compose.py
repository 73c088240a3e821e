"""The compose file (deploy/compose/compose.yaml): linted against the Compose
schema (dclint), then each service run as Compose would start it from the
image (its command and environment over the Dockerfile's), with the
service names mapped to loopback addresses; the three must form one
cluster, take a publish and stop cleanly within their grace period."""

import re
import shlex
from pathlib import Path

import yaml

from common import DEPLOY, Hosts, fail, health, log, publish_and_pull, run, tool, wait_cluster, wait_listening
from container import Container, stop_timeout
from dockerfile import DOCKERFILE, Image

COMPOSE = DEPLOY / "compose" / "compose.yaml"


def seconds(duration):
    """A Compose duration (`2m`, `1m30s`, `90s`) in seconds."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", str(duration))
    if not parts or not any(parts.groups()):
        fail(f"cannot read the duration {duration!r}")
    h, m, s = (int(p or 0) for p in parts.groups())
    return h * 3600 + m * 60 + s


def environment(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def words(value):
    return shlex.split(value) if isinstance(value, str) else list(value)


def peer_ids(peers):
    return {int(entry.split("=", 1)[0]) for entry in peers.split(",") if entry}


def check(tmp):
    run([tool("dclint"), "--max-warnings", "0", COMPOSE])
    log("  dclint: clean")
    spec = yaml.safe_load(COMPOSE.read_text())
    image = Image()
    services = spec.get("services") or {}
    if len(services) != 3:
        fail(f"compose.yaml has {len(services)} services, not the 3 nodes of a cluster")
    hosts = Hosts(list(services), image.expose)
    processes, servers, voters = [], None, set()
    try:
        for name, service in services.items():
            build = service.get("build") or {}
            dockerfile = COMPOSE.parent / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
            if dockerfile.resolve() != DOCKERFILE.resolve():
                fail(f"service {name} builds {dockerfile}, not {DOCKERFILE}")
            for volume in service.get("volumes") or []:
                target = volume.split(":")[1] if isinstance(volume, str) else volume["target"]
                if target not in image.volumes:
                    fail(f"service {name} mounts {target}, which is not the image's VOLUME {image.volumes}")
            if not any(v for v in service.get("volumes") or []):
                fail(f"service {name} keeps its data in no volume")
            argv = words(service.get("entrypoint") or image.entrypoint) + words(service.get("command", image.cmd))
            env = environment(service)
            servers = hosts.localize(env.get("FERRY_SERVER", "")) or servers
            voters |= peer_ids(env.get("FERRY_PEERS", ""))
            container = Container(image, name, hosts, Path(tmp) / name)
            processes.append(container.start(argv, env, tmp))
        if not servers or voters != {1, 2, 3}:
            fail(f"the services set FERRY_SERVER {servers!r} and FERRY_PEERS with voters {voters}")
        for name, process in zip(services, processes):
            wait_listening(process, hosts.addr(name, 7070))
        wait_cluster(servers, voters, processes)
        for name in services:
            if health(hosts.addr(name, 7070)) != "SERVING":
                fail(f"{name} is not SERVING")
        publish_and_pull(servers, "compose-smoke", ["a", "b", "c", "d"])
        log(f"  {', '.join(services)}: one cluster of voters {sorted(voters)}, all SERVING, publish/pull")
        for (name, service), process in zip(services.items(), processes):
            sig = stop_timeout(service.get("stop_signal", image.stopsignal))
            took = process.stop(sig, seconds(service.get("stop_grace_period", "10s")))
            log(f"  {name}: clean exit {took:.1f}s after {sig.name}")
    finally:
        for process in processes:
            process.kill()
