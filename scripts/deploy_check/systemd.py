"""The systemd unit (deploy/systemd): `systemd-analyze verify` and
`systemd-sysusers --dry-run` on the files, a few facts the unit must keep
(what the hardening allows ferryd to write, how it is stopped), the files
RUNBOOK.md installs (each file ferry.toml names, readable by the ferry
user, the secret ones by nobody else), then three instances ferryd@1..3 run
as the unit declares them (its Environment, EnvironmentFile and ExecStart)
with the shared ferry.toml and each host's own certificate, on a loopback
address standing in for its host: a cluster over TLS with tokens, then the
runbook's steps, a token rotated by a rolling restart among them."""

import re
import shlex
import shutil
import signal
import subprocess
import time
import tomllib
from pathlib import Path

from common import (
    DEPLOY,
    Hosts,
    Process,
    Secrets,
    bin_dir,
    binary,
    client_env,
    fail,
    ferry,
    log,
    publish_and_pull,
    refuses_strangers,
    run,
    secured_config,
    serving,
    use,
    wait_cluster,
    wait_listening,
)

UNIT = DEPLOY / "systemd" / "ferryd@.service"
SYSUSERS = DEPLOY / "systemd" / "ferry.sysusers.conf"
CONFIG = DEPLOY / "systemd" / "ferry.toml"
INSTALLED_BINARY = "/usr/local/bin/"
# The host RUNBOOK.md adds as node 4.
NEW_HOST = "ferry-4.example.internal"


def parse_unit(text):
    """{section: [(key, value)]}, keys in order (systemd keys repeat)."""
    sections, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif current is not None and "=" in line:
            key, value = line.split("=", 1)
            current.append((key.strip(), value.strip()))
    return sections


def values(section, key):
    return [v for k, v in section if k == key]


def one(section, key):
    found = values(section, key)
    if len(found) != 1:
        fail(f"the unit sets {key} {len(found)} times, expected once")
    return found[0]


def instance(text, node_id):
    """Expands the specifiers the unit uses; any other is an error here."""
    expanded = re.sub(r"%([%iI])", lambda m: "%" if m.group(1) == "%" else str(node_id), text)
    if re.search(r"%[a-zA-Z]", expanded):
        fail(f"unexpected specifier in {text!r}")
    return expanded


def verify(tmp):
    # ExecStart must name an executable: point it at the one built here.
    text = UNIT.read_text().replace(INSTALLED_BINARY, f"{bin_dir()}/")
    units = Path(tmp) / "units"
    units.mkdir()
    (units / UNIT.name).write_text(text)
    done = run(["systemd-analyze", "verify", units / "ferryd@1.service"], ok=False)
    if done.returncode != 0 or (done.stdout + done.stderr).strip():
        fail(f"systemd-analyze verify ferryd@1.service:\n{done.stdout}{done.stderr}")
    users = run(["systemd-sysusers", "--dry-run", f"--root={tmp}", SYSUSERS], ok=False)
    if users.returncode != 0 or "Failed" in users.stderr or "ignoring" in users.stderr:
        fail(f"systemd-sysusers --dry-run {SYSUSERS.name}:\n{users.stdout}{users.stderr}")
    return users.stdout + users.stderr


def check_facts(service, sysusers_output):
    user, group = one(service, "User"), one(service, "Group")
    if f"Creating user '{user}'" not in sysusers_output or f"Creating group '{group}'" not in sysusers_output:
        fail(f"{SYSUSERS.name} does not create User={user} Group={group}:\n{sysusers_output}")
    if one(service, "KillSignal") != "SIGTERM" or one(service, "Restart") != "on-failure":
        fail("the unit must stop ferryd with SIGTERM and restart it on failure")
    if int(one(service, "TimeoutStopSec")) < 30:
        fail("TimeoutStopSec must leave a graceful shutdown time (at least 30 s)")
    if int(one(service, "LimitNOFILE")) < 65536:
        fail("LimitNOFILE must allow RocksDB's files (at least 65536)")
    # ProtectSystem=strict leaves only the state directories writable.
    state = [f"/var/lib/{instance(d, 1)}" for v in values(service, "StateDirectory") for d in v.split()]
    env = environment(service, 1)
    if not any(instance(env.get("FERRY_DATA_DIR", ""), 1).startswith(s) for s in state):
        fail(f"FERRY_DATA_DIR {env.get('FERRY_DATA_DIR')} is not in a StateDirectory {state}")
    if "/var/lib/ferry/backups" not in state:
        fail("ferry cluster backup writes to /var/lib/ferry/backups: make it a StateDirectory")


# Which of the operator's files each path in ferry.toml is, and whether it
# is secret (readable by the ferry user only).
SECRET_FILES = {"tls_cert": False, "tls_key": True, "tls_ca": False, "auth_file": True, "peer_token_file": True}


def installed_files(config, service):
    """RUNBOOK.md's `install` commands against what the unit reads: the
    config file and every TLS and token file the unit or ferry.toml names
    must be installed, readable by the unit's user (as root:GROUP,
    group-readable) and, if secret, by nobody else.
    {setting: (path, mode)}."""
    from runbook import RUNBOOK, installs

    user, group = one(service, "User"), one(service, "Group")
    # The unit's FERRY_* variables beat the file.
    config = {**config, **{k.removeprefix("FERRY_").lower(): v for k, v in environment(service, 1).items()}}
    placed = {path: (mode, owner_group) for path, mode, owner_group in installs(RUNBOOK.read_text())}

    def readable(path, secret):
        if path not in placed:
            fail(f"RUNBOOK.md installs nothing at {path}, which the unit reads")
        mode, owner_group = placed[path]
        by_group = owner_group == group and mode & 0o040
        if not (by_group or mode & 0o004):
            fail(f"RUNBOOK.md installs {path} as root:{owner_group} {mode:04o}: ferryd (User={user}) cannot read it")
        if secret and mode & 0o007:
            fail(f"RUNBOOK.md installs the secret {path} with mode {mode:04o}: readable by every user")
        return mode

    environment_config = environment(service, 1).get("FERRY_CONFIG")
    readable(environment_config, False)
    files = {}
    for key, secret in SECRET_FILES.items():
        path = config.get(key) or fail(f"neither the unit nor ferry.toml sets {key}: no TLS with tokens")
        files[key] = (path, readable(path, secret))
        directory = str(Path(path).parent)
        if directory in placed:
            mode, owner_group = placed[directory]
            if not (mode & 0o001 or (owner_group == group and mode & 0o010)):
                fail(f"RUNBOOK.md makes {directory} {mode:04o} root:{owner_group}: ferryd cannot enter it")
    return files


def environment(service, node_id):
    env = {}
    for value in values(service, "Environment"):
        for pair in shlex.split(instance(value, node_id)):
            key, _, val = pair.partition("=")
            env[key] = val
    return env


def check(tmp):
    tmp = Path(tmp)
    sysusers_output = verify(tmp)
    log("  systemd-analyze verify, systemd-sysusers --dry-run: clean")
    service = parse_unit(UNIT.read_text()).get("Service") or fail("no [Service] section")
    check_facts(service, sysusers_output)
    config = tomllib.loads(CONFIG.read_text())
    files = installed_files(config, service)
    log("  RUNBOOK.md installs ferry.toml and the TLS and token files it names, readable by the ferry user only")
    peers = {int(k): v for k, v in config["peers"].items()}
    names = {node_id: addr.rsplit(":", 1)[0] for node_id, addr in peers.items()}
    names[4] = NEW_HOST
    ports = sorted({int(a.rsplit(":", 1)[1]) for a in [*peers.values(), config["listen"], config["metrics_listen"]]})
    hosts = Hosts(list(names.values()), ports)
    secrets = Secrets(tmp / "secrets")
    use(secrets)
    machine = Machines(tmp, service, hosts, names, secrets, files)
    try:
        # Node 1 also gets the optional per-node file: text logs.
        for node_id in peers:
            machine.start(node_id, "FERRY_LOG_FORMAT=text\n" if node_id == 1 else None)
        servers = ",".join(hosts.localize(addr) for addr in peers.values())
        machine.wait({1, 2, 3})
        for node_id in peers:
            serving(hosts.addr(names[node_id], 7070), names[node_id])
        publish_and_pull(servers, "systemd-smoke", ["x", "y", "z"])
        refuses_strangers(servers, hosts.addr(names[1], 7070), names[1])
        if machine.processes[1].log_tail(5).lstrip().startswith("{"):
            fail("ferryd@1 ignored its EnvironmentFile (FERRY_LOG_FORMAT=text): its log is JSON")
        if not machine.processes[2].log_tail(5).lstrip().startswith("{"):
            fail('ferryd@2 ignored log_format = "json" of ferry.toml')
        log(f"  ferryd@{','.join(map(str, peers))}: one cluster over TLS (certificates naming each host), "
            "all SERVING, publish/pull with a token; no token, a token beyond its rights, plaintext and a "
            "wrong name refused; TLS and tokens in force, not --insecure-plaintext; EnvironmentFile read")

        # RUNBOOK.md, "Add a node": ferryd-4.env names seeds and its address.
        seeds = f"{peers[1]},{peers[2]}"
        machine.start(4, f"FERRY_JOIN={seeds}\nFERRY_ADVERTISE={NEW_HOST}:7070\n")
        machine.wait({1, 2, 3, 4})
        # "Replace a dead node": removed, data wiped, joins with ferryd-3.env.
        machine.processes[3].kill()
        ferry(machine.servers(), "cluster", "remove-node", "3")
        shutil.rmtree(machine.root(3) / "var/lib/ferry/3")
        machine.start(3, f"FERRY_JOIN={seeds}\n")
        machine.wait({1, 2, 3, 4})
        # Taking node 4 out for good: removed, then stopped.
        ferry(machine.servers(), "cluster", "remove-node", "4")
        machine.processes[4].stop(signal.SIGTERM, int(one(service, "TimeoutStopSec")))
        machine.wait({1, 2, 3})
        log("  runbook: ferryd@4 added (ferryd-4.env), dead ferryd@3 replaced, node 4 removed")
        rolling_restart(machine, tmp)
        grace = int(one(service, "TimeoutStopSec"))
        for node_id in (1, 2, 3):
            took = machine.processes[node_id].stop(signal.SIGTERM, grace)
            log(f"  ferryd@{node_id}: clean exit {took:.1f}s after SIGTERM")
    finally:
        for process in machine.processes.values():
            process.kill()


# Stands in for `systemctl restart UNIT` under `ferry cluster rolling-restart`:
# asks the check (below) to restart the unit, and waits until it has. The
# request names the host `ssh` was asked to reach, if any.
SYSTEMCTL = """#!/bin/sh
set -eu
[ "$1" = restart ] || { echo "systemctl stand-in: only restart" >&2; exit 1; }
printf '%s' "${FERRY_CHECK_SSH_HOST:-}" > "$FERRY_CHECK_REQUESTS/$2"
while [ -e "$FERRY_CHECK_REQUESTS/$2" ]; do sleep 0.1; done
"""
# `ssh HOST COMMAND...` and `sudo COMMAND...` as if HOST were this machine.
SSH = """#!/bin/sh
set -eu
FERRY_CHECK_SSH_HOST=$1
export FERRY_CHECK_SSH_HOST
shift
exec sh -c "$*"
"""
SUDO = """#!/bin/sh
exec "$@"
"""


def rolling_restart(machine, tmp):
    """RUNBOOK.md's rolling restart (its first, in "Rotate a token"), its
    command as written, each `ssh HOST sudo systemctl restart ferryd@ID`
    done as systemd on HOST would: SIGTERM, a clean exit within
    TimeoutStopSec, ExecStart again."""
    command = next((c for c in runbook_commands() if "rolling-restart" in c), None)
    if command is None:
        fail("RUNBOOK.md has no ferry cluster rolling-restart command")
    fake_bin, requests = tmp / "fake-bin", tmp / "restart-requests"
    fake_bin.mkdir()
    requests.mkdir()
    for name, script in (("systemctl", SYSTEMCTL), ("ssh", SSH), ("sudo", SUDO)):
        (fake_bin / name).write_text(script)
        (fake_bin / name).chmod(0o755)
    env = {**client_env(), "PATH": f"{fake_bin}:/usr/bin:/bin", "FERRY_CHECK_REQUESTS": str(requests),
           "FERRY_SERVER": machine.servers()}
    # RUNBOOK.md, "Rotate a token": auth.toml edited on every host (a new
    # token in, the viewer's out), then the rolling restart: each node
    # reads the new file as it starts.
    secrets = machine.secrets
    rotated = secrets.entries["admin"] + secrets.token("rotated", "subscribe=*")
    for node_id in (1, 2, 3):
        path = machine.secret_path(node_id, "auth_file")
        path.write_text(rotated)
    if ferry(machine.servers(), "topic", "list", ok=False, token="rotated").returncode == 0:
        fail("the new token was taken before any node restarted: is auth.toml read at all?")
    argv = [str(binary("ferry")) if w == "ferry" else w for w in command]
    restarted, grace = [], int(one(machine.service, "TimeoutStopSec"))
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as tool:
        deadline = time.monotonic() + 120
        while tool.poll() is None and time.monotonic() < deadline:
            for request in requests.iterdir():
                node_id = int(request.name.removeprefix("ferryd@"))
                host = request.read_text()
                if host and host != machine.names[node_id]:
                    tool.kill()
                    fail(f"{' '.join(command)} restarts ferryd@{node_id} on {host}, not {machine.names[node_id]}")
                machine.processes[node_id].stop(signal.SIGTERM, grace)
                machine.start(node_id)
                restarted.append(node_id)
                request.unlink()
            time.sleep(0.05)
        if tool.poll() is None:
            tool.kill()
        output = tool.stdout.read()
    if tool.returncode != 0 or sorted(restarted) != [1, 2, 3]:
        fail(f"{' '.join(command)}: exit {tool.returncode}, restarted {restarted}:\n{output}")
    machine.wait({1, 2, 3})
    ferry(machine.servers(), "topic", "list", token="rotated")
    gone = ferry(machine.servers(), "topic", "list", ok=False, token="viewer")
    if gone.returncode == 0 or "nauthenticated" not in gone.stderr.lower().replace("_", ""):
        fail(f"the token removed from auth.toml still works: {gone.returncode} {gone.stdout}{gone.stderr}")
    log(f"  runbook: {' '.join(command[1:])}: restarted {restarted}, each back and caught up; "
        "the token added to auth.toml works, the one removed is UNAUTHENTICATED")


def runbook_commands():
    """The ferry commands of RUNBOOK.md that are not marked TODO, as words."""
    from runbook import RUNBOOK, commands

    return [[program, *words] for _, todo, program, words in commands(RUNBOOK.read_text()) if not todo]


class Machines:
    """One host per node: its own root for /etc/ferry and /var/lib/ferry,
    with the same ferry.toml, and ferryd@ID run as the unit says."""

    def __init__(self, tmp, service, hosts, names, secrets, files):
        self.tmp, self.service, self.hosts, self.names = tmp, service, hosts, names
        self.secrets, self.files = secrets, files
        self.processes = {}

    def root(self, node_id):
        return self.tmp / self.names[node_id]

    def secret_path(self, node_id, key):
        return Path(self.local(node_id, self.files[key][0]))

    def install_secrets(self, node_id):
        """What RUNBOOK.md has the operator install on the host: its own
        certificate (naming the host, and here the address standing in for
        it), the CA, the token file and the peer token, at the paths and
        modes it gives."""
        name = self.names[node_id]
        cert, key = self.secrets.cert(name, [name, self.hosts.ips[name]])
        sources = {"tls_cert": cert, "tls_key": key, "tls_ca": self.secrets.ca,
                   "auth_file": self.secrets.auth, "peer_token_file": self.secrets.peer_token}
        for file_key, source in sources.items():
            self.secrets.install(source, self.secret_path(node_id, file_key), self.files[file_key][1])

    def local(self, node_id, text):
        root = self.root(node_id)
        text = re.sub(r"(?<![\w./-])(/(?:etc|var)/)", lambda m: f"{root}{m.group(1)}", text)
        return self.hosts.localize(text, own=self.names[node_id])

    def start(self, node_id, env_file=None):
        """Starts ferryd@ID; `env_file` is written to /etc/ferry/ferryd-ID.env."""
        root, service = self.root(node_id), self.service
        (root / "etc/ferry").mkdir(parents=True, exist_ok=True)
        (root / "etc/ferry/ferry.toml").write_text(self.local(node_id, CONFIG.read_text()))
        if not self.secret_path(node_id, "tls_cert").exists():
            self.install_secrets(node_id)
        if env_file is not None:
            (root / f"etc/ferry/ferryd-{node_id}.env").write_text(self.local(node_id, env_file))
        for value in values(service, "StateDirectory"):
            for directory in value.split():
                (root / "var/lib" / instance(directory, node_id)).mkdir(parents=True, exist_ok=True)
        env = {k: self.local(node_id, v) for k, v in environment(service, node_id).items()}
        for value in values(service, "EnvironmentFile"):
            path = Path(self.local(node_id, instance(value.lstrip("-"), node_id)))
            if not path.exists():
                if value.startswith("-"):
                    continue
                fail(f"EnvironmentFile {path} is missing")
            for line in path.read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    key, _, val = line.partition("=")
                    env[key.strip()] = val.strip()
        env["PATH"] = "/usr/bin:/bin"
        argv = shlex.split(instance(one(service, "ExecStart"), node_id))
        argv[0] = argv[0].replace(INSTALLED_BINARY, f"{bin_dir()}/")
        name = f"ferryd@{node_id}"
        self.processes[node_id] = Process(name, argv, env, root, self.tmp / f"{name}.log")
        secured_config(self.processes[node_id], self.hosts)
        wait_listening(self.processes[node_id], self.hosts.addr(self.names[node_id], 7070))

    def servers(self):
        return ",".join(self.hosts.addr(self.names[i], 7070) for i, p in self.processes.items() if p.running())

    def wait(self, voters):
        return wait_cluster(self.servers(), voters, [p for p in self.processes.values() if p.running()])
