"""The compose file (deploy/compose/compose.yaml): linted against the Compose
schema (dclint), then each service run as Compose would start it from the
image (its command, environment and secrets over the Dockerfile's), with
the service names mapped to loopback addresses and the secrets made as
RUNBOOK.md makes them; the three must form one cluster over TLS, take a
publish with a token, refuse strangers and stop cleanly within their grace
period."""

import re
import shlex
from pathlib import Path

import yaml

from common import (
    DEPLOY,
    Hosts,
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
    wait_cluster,
    wait_listening,
)
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


def secret_sources(spec, services, secrets, hosts):
    """Each of the file's secrets (name -> the file it stands for), made by
    the check as RUNBOOK.md has the operator make them: the same files,
    each certificate for the names the runbook gives it (which must include
    the service that mounts it) and the loopback address standing in."""
    from runbook import RUNBOOK, made_secrets

    directory = str((COMPOSE.parent / "secrets").relative_to(COMPOSE.parents[2]))
    made = made_secrets(RUNBOOK.read_text(), directory)
    users = {}
    for name, service in services.items():
        for entry in service.get("secrets") or []:
            users.setdefault(entry if isinstance(entry, str) else entry["source"], []).append(name)
    sources = {}
    for secret, definition in (spec.get("secrets") or {}).items():
        file = Path(definition.get("file") or fail(f"secret {secret} is not a file"))
        if (COMPOSE.parent / file).parent != COMPOSE.parent / "secrets":
            fail(f"secret {secret} is {file}, not in the secrets directory RUNBOOK.md fills")
        if file.name not in made:
            fail(f"secret {secret} is {file}, which RUNBOOK.md does not make in {directory}")
        if file.name == "ca.pem":
            sources[secret] = secrets.ca
        elif file.name == "auth.toml":
            sources[secret] = secrets.auth
        elif file.name == "peer.token":
            sources[secret] = secrets.peer_token
        elif file.suffix in (".pem", ".key"):
            names = made[file.name]
            for user in users.get(secret, []):
                if user not in names:
                    fail(f"service {user} mounts {file}, a certificate RUNBOOK.md makes for {names}, not {user}")
            cert, key = secrets.cert(file.stem, names + [hosts.ips[n] for n in names if n in hosts.ips])
            sources[secret] = cert if file.suffix == ".pem" else key
        else:
            fail(f"secret {secret} is {file}: this check does not know what it holds")
    return sources


def mount_secrets(container, service, sources):
    """The service's secrets, where Compose mounts them: /run/secrets/TARGET."""
    for entry in service.get("secrets") or []:
        source = entry if isinstance(entry, str) else entry["source"]
        target = source if isinstance(entry, str) else entry.get("target", source)
        if source not in sources:
            fail(f"a service mounts the secret {source}, which the file does not define")
        container.mount(sources[source], target if target.startswith("/") else f"/run/secrets/{target}")


def check(tmp):
    run([tool("dclint"), "--max-warnings", "0", COMPOSE])
    log("  dclint: clean")
    spec = yaml.safe_load(COMPOSE.read_text())
    image = Image()
    services = spec.get("services") or {}
    if len(services) != 3:
        fail(f"compose.yaml has {len(services)} services, not the 3 nodes of a cluster")
    hosts = Hosts(list(services), image.expose)
    secrets = Secrets(Path(tmp) / "secrets")
    use(secrets)
    sources = secret_sources(spec, services, secrets, hosts)
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
            mount_secrets(container, service, sources)
            processes.append(container.start(argv, env, tmp))
            secured_config(processes[-1], hosts)
        if not servers or voters != {1, 2, 3}:
            fail(f"the services set FERRY_SERVER {servers!r} and FERRY_PEERS with voters {voters}")
        for name, process in zip(services, processes):
            wait_listening(process, hosts.addr(name, 7070))
        wait_cluster(servers, voters, processes)
        for name in services:
            serving(hosts.addr(name, 7070), name)
        publish_and_pull(servers, "compose-smoke", ["a", "b", "c", "d"])
        first = next(iter(services))
        refuses_strangers(servers, hosts.addr(first, 7070), first)
        log(f"  {', '.join(services)}: secrets as RUNBOOK.md makes them, mounted as the file says; one cluster "
            f"of voters {sorted(voters)} over TLS (not --insecure-plaintext), all SERVING, publish/pull with a "
            "token; no token, a token beyond its rights, plaintext and a wrong name refused")
        for (name, service), process in zip(services.items(), processes):
            sig = stop_timeout(service.get("stop_signal", image.stopsignal))
            took = process.stop(sig, seconds(service.get("stop_grace_period", "10s")))
            log(f"  {name}: clean exit {took:.1f}s after {sig.name}")
    finally:
        for process in processes:
            process.kill()
