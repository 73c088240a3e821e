"""The systemd unit (deploy/systemd): `systemd-analyze verify` and
`systemd-sysusers --dry-run` on the files, a few facts the unit must keep
(what the hardening allows ferryd to write, how it is stopped), then three
instances ferryd@1..3 run as the unit declares them (its Environment,
EnvironmentFile and ExecStart) with the shared ferry.toml, each on a
loopback address standing in for its host."""

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
    bin_dir,
    binary,
    fail,
    ferry,
    health,
    log,
    publish_and_pull,
    run,
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
    peers = {int(k): v for k, v in config["peers"].items()}
    names = {node_id: addr.rsplit(":", 1)[0] for node_id, addr in peers.items()}
    names[4] = NEW_HOST
    ports = sorted({int(a.rsplit(":", 1)[1]) for a in [*peers.values(), config["listen"], config["metrics_listen"]]})
    hosts = Hosts(list(names.values()), ports)
    machine = Machines(tmp, service, hosts, names)
    try:
        # Node 1 also gets the optional per-node file: text logs.
        for node_id in peers:
            machine.start(node_id, "FERRY_LOG_FORMAT=text\n" if node_id == 1 else None)
        servers = ",".join(hosts.localize(addr) for addr in peers.values())
        machine.wait({1, 2, 3})
        for addr in peers.values():
            if health(hosts.localize(addr)) != "SERVING":
                fail(f"{addr} is not SERVING")
        publish_and_pull(servers, "systemd-smoke", ["x", "y", "z"])
        if machine.processes[1].log_tail(5).lstrip().startswith("{"):
            fail("ferryd@1 ignored its EnvironmentFile (FERRY_LOG_FORMAT=text): its log is JSON")
        if not machine.processes[2].log_tail(5).lstrip().startswith("{"):
            fail('ferryd@2 ignored log_format = "json" of ferry.toml')
        log(f"  ferryd@{','.join(map(str, peers))}: one cluster, all SERVING, publish/pull, EnvironmentFile read")

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
# asks the check (below) to restart the unit, and waits until it has.
SYSTEMCTL = """#!/bin/sh
set -eu
[ "$1" = restart ] || { echo "systemctl stand-in: only restart" >&2; exit 1; }
touch "$FERRY_CHECK_REQUESTS/$2"
while [ -e "$FERRY_CHECK_REQUESTS/$2" ]; do sleep 0.1; done
"""


def rolling_restart(machine, tmp):
    """RUNBOOK.md's rolling restart, its command as written, each
    `systemctl restart ferryd@ID` done as systemd would: SIGTERM, a clean
    exit within TimeoutStopSec, ExecStart again."""
    command = next((c for c in runbook_commands() if "rolling-restart" in c), None)
    if command is None:
        fail("RUNBOOK.md has no ferry cluster rolling-restart command")
    fake_bin, requests = tmp / "fake-bin", tmp / "restart-requests"
    fake_bin.mkdir()
    requests.mkdir()
    (fake_bin / "systemctl").write_text(SYSTEMCTL)
    (fake_bin / "systemctl").chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "FERRY_CHECK_REQUESTS": str(requests),
           "FERRY_SERVER": machine.servers()}
    argv = [str(binary("ferry")) if w == "ferry" else w for w in command]
    restarted, grace = [], int(one(machine.service, "TimeoutStopSec"))
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as tool:
        deadline = time.monotonic() + 120
        while tool.poll() is None and time.monotonic() < deadline:
            for request in requests.iterdir():
                node_id = int(request.name.removeprefix("ferryd@"))
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
    log(f"  runbook: {' '.join(command[1:])}: restarted {restarted}, each back and caught up")


def runbook_commands():
    """The ferry commands of RUNBOOK.md that are not marked TODO, as words."""
    from runbook import RUNBOOK, commands

    return [[program, *words] for _, todo, program, words in commands(RUNBOOK.read_text()) if not todo]


class Machines:
    """One host per node: its own root for /etc/ferry and /var/lib/ferry,
    with the same ferry.toml, and ferryd@ID run as the unit says."""

    def __init__(self, tmp, service, hosts, names):
        self.tmp, self.service, self.hosts, self.names = tmp, service, hosts, names
        self.processes = {}

    def root(self, node_id):
        return self.tmp / self.names[node_id]

    def local(self, node_id, text):
        root = self.root(node_id)
        text = re.sub(r"(?<![\w./-])(/(?:etc|var)/)", lambda m: f"{root}{m.group(1)}", text)
        return self.hosts.localize(text, own=self.names[node_id])

    def start(self, node_id, env_file=None):
        """Starts ferryd@ID; `env_file` is written to /etc/ferry/ferryd-ID.env."""
        root, service = self.root(node_id), self.service
        (root / "etc/ferry").mkdir(parents=True, exist_ok=True)
        (root / "etc/ferry/ferry.toml").write_text(self.local(node_id, CONFIG.read_text()))
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
        wait_listening(self.processes[node_id], self.hosts.addr(self.names[node_id], 7070))

    def servers(self):
        return ",".join(self.hosts.addr(self.names[i], 7070) for i, p in self.processes.items() if p.running())

    def wait(self, voters):
        return wait_cluster(self.servers(), voters, [p for p in self.processes.values() if p.running()])
