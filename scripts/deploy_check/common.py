"""What every part of the deploy check shares: the tools, processes of the
built binaries, loopback stand-ins for host names, throwaway secrets (a CA,
node certificates, tokens) made by deploy/make-secrets, and cluster checks
run through the real `ferry` CLI over TLS with a token."""

import json
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TOOLS = Path(os.environ.get("FERRY_DEPLOY_TOOLS", Path.home() / ".cache/ferry/deploy-tools"))
MAKE_SECRETS = DEPLOY / "make-secrets"


class CheckFailed(Exception):
    pass


def fail(message):
    raise CheckFailed(message)


def log(message):
    print(message, flush=True)


def bin_dir():
    """Where ferryd and ferry were built (as tests/src/lib.rs finds them)."""
    if os.environ.get("FERRY_BIN_DIR"):
        return Path(os.environ["FERRY_BIN_DIR"])
    target = os.environ.get("CARGO_TARGET_DIR") or REPO / "target"
    return Path(target) / "debug"


def binary(name):
    path = bin_dir() / name
    if not path.is_file():
        fail(f"{path} is missing: build first (cargo build --workspace --locked)")
    return path


def tool(name):
    """A linter installed by scripts/ensure-build-deps."""
    for path in (TOOLS / "bin" / name, TOOLS / "npm/node_modules/.bin" / name):
        if path.exists():
            return str(path)
    found = shutil.which(name)
    if found:
        return found
    fail(f"{name} is missing: run scripts/ensure-build-deps (it installs the deploy tools in {TOOLS})")


def run(argv, *, ok=True, env=None, timeout=120):
    """Runs a command to its end; fails the check if it fails and `ok`."""
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if ok and done.returncode != 0:
        fail(f"{' '.join(map(str, argv))} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


class Secrets:
    """What an operator makes before starting a cluster (deploy/RUNBOOK.md,
    "Secure the cluster"), made the same way, with deploy/make-secrets: a
    throwaway CA, the peer token, client tokens (`admin` may do anything,
    `viewer` nothing but read) in an auth.toml, and node certificates on
    demand."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.make("ca")
        self.make("peer-token")
        self.ca, self.auth, self.peer_token = self.dir / "ca.pem", self.dir / "auth.toml", self.dir / "peer.token"
        self.tokens, self.entries, self.certs = {}, {}, {}
        entries = self.token("admin", "cluster", "admin=*", "publish=*", "subscribe=*") + self.token("viewer")
        self.auth.write_text(entries)

    def make(self, *args):
        return run([MAKE_SECRETS, self.dir, *args])

    def token(self, name, *rights):
        """A new client token `name`: its auth.toml entry (self.tokens has
        the secret)."""
        entry = self.make("token", name, *rights).stdout
        self.tokens[name] = (self.dir / f"{name}.token").read_text().strip()
        self.entries[name] = entry
        return entry

    def cert(self, name, names):
        """A node certificate `name` for every host name and address in
        `names`, made once: (certificate, key)."""
        made = self.dir / f"{name}.pem", self.dir / f"{name}.key"
        if self.certs.setdefault(name, names) != names:
            fail(f"certificate {name} is wanted for {names} and for {self.certs[name]}")
        if not made[0].exists():
            self.make("cert", name, *names)
        return made

    def install(self, source, target, mode=0o600):
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        target.chmod(mode)


# How the check's `ferry` calls speak to the deployment under test: its CA
# and a token (FERRY_TLS_CA, FERRY_TOKEN), set by `use`.
CLIENT = {}


def use(secrets):
    """Every `ferry` call from now on trusts `secrets`' CA and presents its
    admin token, as an operator's shell would with FERRY_TLS_CA/FERRY_TOKEN."""
    CLIENT.clear()
    CLIENT.update({"FERRY_TLS_CA": str(secrets.ca), "FERRY_TOKEN": secrets.tokens["admin"], "secrets": secrets})


def client_env(token="admin", tls=True):
    """The environment of a `ferry` call: no FERRY_* of the caller's, the
    deployment's CA (unless not `tls`) and the token named `token` (none
    for None)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    if tls and "FERRY_TLS_CA" in CLIENT:
        env["FERRY_TLS_CA"] = CLIENT["FERRY_TLS_CA"]
    if token and "secrets" in CLIENT:
        env["FERRY_TOKEN"] = CLIENT["secrets"].tokens[token]
    return env


def ferry(servers, *args, ok=True, token="admin", tls=True):
    return run([binary("ferry"), "--server", servers, *args], ok=ok, env=client_env(token, tls))


class Hosts:
    """Stand-ins for the names nodes have in a deployment (service names, pod
    DNS names, host names): each name gets a loopback address of its own, so
    ports stay as the files declare them. A random 127.x.y.0/24 per run keeps
    concurrent runs apart (the fault harness uses 127.231.*)."""

    def __init__(self, names, ports, aliases=None):
        """`aliases` maps more names to one of `names` (a Service to a pod)."""
        self.ports = ports
        for _ in range(50):
            prefix = f"127.{random.randint(100, 220)}.{random.randint(0, 255)}"
            ips = {name: f"{prefix}.{i + 1}" for i, name in enumerate(names)}
            if all(self._free(ip) for ip in ips.values()):
                self.ips = ips
                for alias, name in (aliases or {}).items():
                    self.ips[alias] = ips[name]
                return
        fail("no free loopback addresses for the nodes")

    def _free(self, ip):
        for port in self.ports:
            with socket.socket() as s:
                try:
                    s.bind((ip, port))
                except OSError:
                    return False
        return True

    def localize(self, text, own=None):
        """`text` as it reads on this machine: NAME:PORT becomes IP:PORT, and
        for the node named `own`, the wildcard 0.0.0.0:PORT becomes its IP."""
        for name in sorted(self.ips, key=len, reverse=True):
            for port in self.ports:
                text = text.replace(f"{name}:{port}", f"{self.ips[name]}:{port}")
        if own is not None:
            for port in self.ports:
                text = text.replace(f"0.0.0.0:{port}", f"{self.ips[own]}:{port}")
        for name in self.ips:
            if f"{name}:" in text:
                fail(f"{name} is used with a port not in {self.ports}: {text!r}")
        if "0.0.0.0:" in text:
            fail(f"a wildcard address is left in {text!r}")
        return text

    def addr(self, name, port):
        return f"{self.ips[name]}:{port}"


class Process:
    """A deployment's node, run as a process; stdout and stderr go to a log."""

    def __init__(self, name, argv, env, cwd, log_path):
        self.name = name
        self.argv, self.env, self.cwd = [str(a) for a in argv], env, cwd
        self.log_path = Path(log_path)
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(a) for a in argv],
            env=env,
            cwd=cwd,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, lines=30):
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def running(self):
        return self.proc.poll() is None

    def stop(self, sig, within):
        """Sends `sig` and expects a clean exit (0) within `within` seconds."""
        start = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.kill()
            fail(f"{self.name} did not stop within {within}s of {sig.name}:\n{self.log_tail()}")
        if code != 0:
            fail(f"{self.name} exited with {code} on {sig.name}:\n{self.log_tail()}")
        return time.monotonic() - start

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait()
        self.log_file.close()


def wait_listening(process, addr, within=30):
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not process.running():
            fail(f"{process.name} exited with {process.proc.returncode}:\n{process.log_tail()}")
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex((host, int(port))) == 0:
                return
        time.sleep(0.1)
    fail(f"{process.name} does not listen on {addr} after {within}s:\n{process.log_tail()}")


def cluster_status(servers):
    done = ferry(servers, "cluster", "status", "--json", ok=False)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout)


def wait_cluster(servers, voters, processes, within=60):
    """Waits until the nodes `voters` are the voters, a leader is elected and
    every voter is reachable and caught up (no lag)."""
    deadline = time.monotonic() + within
    status = None
    while time.monotonic() < deadline:
        for p in processes:
            if not p.running():
                fail(f"{p.name} exited with {p.proc.returncode}:\n{p.log_tail()}")
        status = cluster_status(servers)
        if status and status.get("leader_id") and _settled(status, voters):
            return status
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.name}\n{p.log_tail(15)}" for p in processes)
    fail(f"no cluster of voters {sorted(voters)} within {within}s; last status:\n"
         f"{json.dumps(status, indent=1)}\n{logs}")


def _settled(status, voters):
    members = {m["node_id"]: m for m in status.get("members", [])}
    if {i for i, m in members.items() if m.get("voter")} != set(voters):
        return False
    for i in voters:
        node = members[i].get("status") or {}
        if node.get("role") not in ("leader", "follower") or members[i].get("lag_entries", 1) != 0:
            return False
    return True


def publish_and_pull(servers, topic, lines):
    """Publishes `lines` to a new topic and reads them back, acked, through a
    subscription: the cluster takes writes and delivers them."""
    ferry(servers, "topic", "create", topic)
    ferry(servers, "sub", "create", f"{topic}-sub", "--topic", topic)
    publish = subprocess.run(
        [str(binary("ferry")), "--server", servers, "publish", topic],
        input="".join(f"{line}\n" for line in lines), capture_output=True, text=True, check=False,
        env=client_env(),
    )
    if publish.returncode != 0 or publish.stdout.strip() != str(len(lines)):
        fail(f"publish to {topic}: {publish.returncode} {publish.stdout}{publish.stderr}")
    got = []
    deadline = time.monotonic() + 20
    while len(got) < len(lines) and time.monotonic() < deadline:
        pulled = ferry(servers, "pull", f"{topic}-sub", "--max", "100", "--ack", "--json")
        got += [json.loads(line)["data"] for line in pulled.stdout.splitlines() if line.strip()]
    if sorted(got) != sorted(lines):
        fail(f"pulled {got} from {topic}, published {lines}")


def health(addr, name=None, tls=True):
    """The gRPC health service's answer for the whole server, as a probe
    asks it: over TLS trusting the deployment's CA, checking that the
    node's certificate holds `name` (the host name the deployment gives the
    node; default: the address's IP), or in plaintext if not `tls`."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if tls and "FERRY_TLS_CA" in CLIENT:
        credentials = grpc.ssl_channel_credentials(root_certificates=Path(CLIENT["FERRY_TLS_CA"]).read_bytes())
        options = [("grpc.ssl_target_name_override", name)] if name else []
        channel = grpc.secure_channel(addr, credentials, options=options)
    else:
        channel = grpc.insecure_channel(addr)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        except grpc.RpcError as e:
            return f"error: {e.code().name}"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def serving(addr, name, within=20):
    """Fails unless the node at `addr` says SERVING over TLS, with a
    certificate naming `name`, within `within` seconds (a probe retries)."""
    deadline = time.monotonic() + within
    while (said := health(addr, name)) != "SERVING":
        if time.monotonic() > deadline:
            fail(f"{name} ({addr}) is not SERVING over TLS as {name} after {within}s: {said}")
        time.sleep(0.2)


def refuses_strangers(servers, addr, name):
    """What the deployment must refuse, now that it is secured: a call
    without a token (UNAUTHENTICATED), a token beyond its rights
    (PERMISSION_DENIED), a client that speaks plaintext, a certificate
    checked for a name the node does not have."""
    bare = ferry(servers, "topic", "list", ok=False, token=None)
    if bare.returncode == 0 or "nauthenticated" not in bare.stderr.lower().replace("_", ""):
        fail(f"a call without a token was not refused as UNAUTHENTICATED: {bare.returncode} {bare.stdout}{bare.stderr}")
    denied = ferry(servers, "topic", "create", "strangers", ok=False, token="viewer")
    if denied.returncode == 0 or "permission" not in denied.stderr.lower():
        fail(f"the viewer token created a topic: {denied.returncode} {denied.stdout}{denied.stderr}")
    plain = ferry(servers, "cluster", "status", ok=False, tls=False)
    if plain.returncode == 0:
        fail(f"a plaintext client was answered: {plain.stdout}")
    if health(addr, tls=False) == "SERVING":
        fail(f"{addr} answers gRPC health in plaintext")
    if health(addr, "not-this-node.invalid") == "SERVING":
        fail(f"{addr} was trusted under a name its certificate does not hold")


SECURITY_KEYS = ("tls_cert", "tls_key", "tls_ca", "auth_file", "peer_token_file")


def secured_config(process, hosts):
    """The settings `process` runs with (its command, environment and files,
    through `ferryd --print-config`): TLS and tokens on, no
    insecure_plaintext, and a listen address standing in for one that is
    not loopback (a host name or the wildcard), where ferryd refuses
    plaintext: so the deployment does not pass here only because the
    check runs it on loopback."""
    import tomllib

    argv = list(process.argv)
    if Path(argv[0]).name != "ferryd":
        # A wrapper (ferryd-pod) that ends in `exec ferryd "$@"`.
        argv[0] = str(Path(argv[0]).parent / "ferryd")
    done = run([*argv, "--print-config"], env=process.env)
    config = tomllib.loads(done.stdout)
    unset = [key for key in SECURITY_KEYS if not config.get(key)]
    if unset:
        fail(f"{process.name} runs without {', '.join(unset)}:\n{done.stdout}")
    if config.get("insecure_plaintext") is not False:
        fail(f"{process.name} runs with insecure_plaintext = {config.get('insecure_plaintext')}")
    host = config["listen"].rsplit(":", 1)[0]
    if host not in hosts.ips.values():
        fail(f"{process.name} listens on {config['listen']}, which stands for no host name or wildcard "
             f"of the deployment: it would listen on loopback")
    return config
