"""The Kubernetes manifests (deploy/kubernetes): validated against the
Kubernetes API schemas (kubernetes-validate --strict), checked against each
other and the image (selectors, ports, probes, the config mount, the
disruption budget), then the StatefulSet's pods run as the kubelet would
start them from the image: the container's command, args and env with
$(VAR) references and the downward API filled in, the ConfigMap, the
Secrets (made as RUNBOOK.md makes them, with its `kubectl create secret`
keys) and the data volume mounted, each pod's DNS name on a loopback
address of its own. The pods serve TLS and ask for tokens; readiness is
the probe's own command run in the pod. The pods then go through what
deploy/RUNBOOK.md tells an operator to do: first start (one pod late),
rolling restart, replacing a dead pod, scaling up and down."""

import re
import shutil
import signal
import time
from pathlib import Path

import yaml

from common import (
    DEPLOY,
    Hosts,
    Secrets,
    cluster_status,
    fail,
    ferry,
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
from container import Container
from dockerfile import Image

MANIFESTS = DEPLOY / "kubernetes"
NAMESPACE = "ferry-check"
# The namespace RUNBOOK.md deploys to (`kubectl -n ferry`), in its names.
RUNBOOK_NAMESPACE = "ferry"
# The oldest Kubernetes the manifests are meant for (native gRPC probes,
# PVC retention policy, pod index label are all there) and the newest known.
VERSIONS = ["1.30.0", "1.37.0"]


def load():
    docs = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def only(docs, kind):
    found = [doc for (k, _), doc in docs.items() if k == kind]
    if len(found) != 1:
        fail(f"expected one {kind}, found {len(found)}")
    return found[0]


def selects(selector, labels, what):
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        fail(f"{what}'s selector {selector} does not select the pods (labels {labels})")


def consistent(docs, image):
    """What the schemas cannot see: the pieces must fit each other."""
    sts = only(docs, "StatefulSet")
    spec, pod = sts["spec"], sts["spec"]["template"]
    labels, containers = pod["metadata"]["labels"], pod["spec"]["containers"]
    if len(containers) != 1:
        fail("the pod should run one container, ferryd")
    container = containers[0]
    if spec.get("replicas") != 3 or spec.get("podManagementPolicy") != "Parallel":
        fail("3 replicas started in parallel (a pod is ready only once a majority runs)")
    selects(spec["selector"]["matchLabels"], labels, "the StatefulSet")
    headless = docs.get(("Service", spec["serviceName"])) or fail(f"no Service {spec['serviceName']}")
    if headless["spec"].get("clusterIP") != "None" or not headless["spec"].get("publishNotReadyAddresses"):
        fail("the StatefulSet's Service must be headless and publish pods before they are ready")
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    for (kind, name), doc in docs.items():
        if kind == "Service":
            selects(doc["spec"]["selector"], labels, f"Service {name}")
            for port in doc["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                if target not in port_names and target not in port_names.values():
                    fail(f"Service {name} targets port {target}, which the pod does not have")
    if set(port_names.values()) != set(image.expose):
        fail(f"the pod's ports {port_names} are not the image's {image.expose}")
    # The kubelet's grpc probe speaks no TLS: readiness is a command of the image.
    probe = container["readinessProbe"].get("exec", {}).get("command") or []
    if not probe or probe[0] not in image.files():
        fail(f"the readiness probe runs {probe}, which is not a file of the image")
    if container["readinessProbe"].get("timeoutSeconds", 1) < 3:
        fail("the readiness probe asks the cluster's status: give it timeoutSeconds of 3 or more")
    pdb = only(docs, "PodDisruptionBudget")
    selects(pdb["spec"]["selector"]["matchLabels"], labels, "the PodDisruptionBudget")
    allowed = pdb["spec"].get("maxUnavailable", spec["replicas"] - pdb["spec"].get("minAvailable", 0))
    if allowed != 1:
        fail(f"the PodDisruptionBudget allows {allowed} pods down; at most 1 keeps a majority of 3")
    security = pod["spec"].get("securityContext", {})
    if security.get("runAsUser") != image.uid() or security.get("fsGroup") != image.uid():
        fail(f"runAsUser and fsGroup must be the image's uid {image.uid()}")
    if pod["spec"].get("terminationGracePeriodSeconds", 30) < 30:
        fail("terminationGracePeriodSeconds must leave time for a graceful shutdown")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    for claim in spec["volumeClaimTemplates"]:
        if mounts.get(claim["metadata"]["name"]) not in image.volumes:
            fail(f"volume {claim['metadata']['name']} is not mounted at the image's VOLUME {image.volumes}")
    config = {e["name"]: e.get("value") for e in container["env"]}.get("FERRY_CONFIG") or image.env["FERRY_CONFIG"]
    files = volume_files(docs, pod["spec"]["volumes"], mounts, secrets=None)
    if config not in files:
        fail(f"FERRY_CONFIG {config} is not a ConfigMap's file as mounted")
    return sts, container


def sources_of(volume):
    """A volume's ConfigMaps and Secrets, whether it is one or projects several."""
    if "projected" in volume:
        return volume["projected"]["sources"]
    return [{kind: volume[kind]} for kind in ("configMap", "secret") if kind in volume]


def volume_files(docs, volumes, mounts, secrets):
    """Every file the ConfigMap and Secret volumes put in the pod: {pod path:
    (kind, name, key)}. A ConfigMap must be in the manifests; a Secret, if
    `secrets` ({name: {key: file}}) is given, must be there with the key."""
    files = {}
    for volume in volumes:
        base = mounts.get(volume["name"])
        for source in sources_of(volume):
            for kind, ref in source.items():
                name = ref.get("name") or ref.get("secretName")
                if kind == "configMap":
                    doc = docs.get(("ConfigMap", name)) or fail(f"volume {volume['name']}: no ConfigMap {name}")
                    keys = list(doc["data"])
                elif kind == "secret":
                    keys = [item["key"] for item in ref.get("items", [])]
                    if not keys:
                        fail(f"volume {volume['name']}: name the keys of Secret {name} (items), so a "
                             "key missing from it stops the pod rather than ferryd")
                    if secrets is not None and any(key not in secrets.get(name, {}) for key in keys):
                        fail(f"Secret {name} with keys {keys}: RUNBOOK.md creates it with {secrets.get(name)}")
                else:
                    continue
                paths = {item["key"]: item["path"] for item in ref.get("items", [])}
                if base is None:
                    fail(f"volume {volume['name']} is not mounted")
                for key in keys:
                    files[f"{base}/{paths.get(key, key)}"] = (kind, name, key)
    return files


def runbook_secrets():
    """The Secrets RUNBOOK.md creates: {name: {key: file}}, from its
    `kubectl create secret generic NAME --from-file=KEY=FILE` commands."""
    from runbook import RUNBOOK, shell_commands

    found = {}
    for _, todo, words in shell_commands(RUNBOOK.read_text()):
        if todo or words[:1] != ["kubectl"] or "secret" not in words or "create" not in words:
            continue
        after = words[words.index("secret") + 1:]
        if after[:1] != ["generic"]:
            continue
        keys = {}
        for word in after[2:]:
            if word.startswith("--from-file="):
                spec = word.split("=", 1)[1]
                key, _, file = spec.rpartition("=")
                keys[key or Path(file).name] = file
        found[after[1]] = keys
    return found


def expand(value, env):
    """Kubernetes' $(VAR) expansion: earlier variables only; $$ escapes."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        value,
    )


def pod_env(container, pod_name):
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(item["value"], env)
            if re.search(r"\$\([A-Za-z_]", env[item["name"]]):
                fail(f"env {item['name']} = {item['value']!r} refers to a variable not defined before it")
            continue
        field = item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        known = {"metadata.name": pod_name, "metadata.namespace": NAMESPACE}
        if field not in known:
            fail(f"env {item['name']}: this check knows no value for {item.get('valueFrom')}")
        env[item["name"]] = known[field]
    return env


def pod_argv(container, image, env):
    if "command" in container:
        words = container["command"] + container.get("args", [])
    else:
        words = image.entrypoint + container.get("args", image.cmd)
    return [expand(word, env) for word in words]


class Pods:
    """The StatefulSet's pods on this machine, started and stopped by ordinal."""

    def __init__(self, tmp, docs, sts, container, image, count):
        self.tmp, self.sts, self.container, self.image = Path(tmp), sts, container, image
        service = sts["spec"]["serviceName"]
        self.dns = [f"{sts['metadata']['name']}-{k}.{service}.{NAMESPACE}.svc" for k in range(count)]
        # The client Service stands for pod 0.
        aliases = {f"{name}.{NAMESPACE}.svc": self.dns[0] for (kind, name) in docs if kind == "Service"}
        # Clients' names: the Services with an address (not the headless one).
        self.client_names = sorted(f"{name}.{NAMESPACE}.svc" for (kind, name), doc in docs.items()
                                   if kind == "Service" and doc["spec"].get("clusterIP") != "None")
        self.hosts = Hosts(self.dns, image.expose, aliases)
        self.mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        self.secrets = Secrets(self.tmp / "secrets")
        use(self.secrets)
        self.files = volume_files(docs, sts["spec"]["template"]["spec"]["volumes"], self.mounts, runbook_secrets())
        self.contents = self.volume_contents(docs)
        self.containers, self.processes, self.log_start = {}, {}, {}

    def volume_contents(self, docs):
        """What each mounted file holds: a ConfigMap's text, or for a
        Secret's key the file RUNBOOK.md creates it from, made here as the
        runbook makes it (a certificate for the names it gives, in this
        namespace, and the addresses standing in for every pod)."""
        from runbook import RUNBOOK, made_secrets

        created = runbook_secrets()
        contents = {}
        for path, (kind, name, key) in self.files.items():
            if kind == "configMap":
                contents[path] = docs[("ConfigMap", name)]["data"][key]
                continue
            file = Path(created[name][key])
            made = made_secrets(RUNBOOK.read_text(), str(file.parent))
            if file.name not in made:
                fail(f"Secret {name} key {key} is {file}, which RUNBOOK.md does not make")
            if file.name == "ca.pem":
                source = self.secrets.ca
            elif file.name == "auth.toml":
                source = self.secrets.auth
            elif file.name == "peer.token":
                source = self.secrets.peer_token
            elif file.suffix in (".pem", ".key"):
                names = [n.replace(f".{RUNBOOK_NAMESPACE}.svc", f".{NAMESPACE}.svc") for n in made[file.name]]
                cert, private = self.secrets.cert(file.stem, names + sorted(set(self.hosts.ips.values())))
                source = cert if file.suffix == ".pem" else private
            else:
                fail(f"Secret {name} key {key} is {file}: this check does not know what it holds")
            contents[path] = Path(source).read_bytes()
        return contents

    def name(self, k):
        return f"{self.sts['metadata']['name']}-{k}"

    def addr(self, k):
        return self.hosts.addr(self.dns[k], 7070)

    def servers(self):
        return ",".join(self.addr(k) for k, p in self.processes.items() if p.running())

    def start(self, k):
        if k not in self.containers:
            pod = Container(self.image, self.dns[k], self.hosts, self.tmp / self.name(k), title=self.name(k))
            # The ConfigMap and Secret volumes replace the image's directories.
            for volume in self.sts["spec"]["template"]["spec"]["volumes"]:
                if sources_of(volume):
                    shutil.rmtree(pod.path(self.mounts[volume["name"]]), ignore_errors=True)
            for path, content in self.contents.items():
                target = pod.path(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, str):
                    target.write_text(pod.localize(content))
                else:
                    target.write_bytes(content)
            self.containers[k] = pod
        env = pod_env(self.container, self.name(k))
        log_file = self.tmp / f"{self.name(k)}.log"
        self.log_start[k] = log_file.stat().st_size if log_file.exists() else 0
        self.processes[k] = self.containers[k].start(pod_argv(self.container, self.image, env), env, self.tmp)
        secured_config(self.processes[k], self.hosts)
        wait_listening(self.processes[k], self.addr(k))

    def stop(self, k):
        grace = self.sts["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        return self.processes[k].stop(signal.SIGTERM, grace)

    def wipe(self, k):
        """The pod's volume deleted and a new, empty one given to it."""
        data = self.containers[k].path(self.mounts["data"])
        shutil.rmtree(data)
        data.mkdir()

    def log_says(self, k, text):
        """Whether the pod's latest start logged `text`."""
        with open(self.tmp / f"{self.name(k)}.log", errors="replace") as log_file:
            log_file.seek(self.log_start[k])
            if text not in log_file.read():
                fail(f"{self.name(k)} should have said {text!r}:\n{self.processes[k].log_tail()}")

    def wait(self, voters):
        return wait_cluster(self.servers(), voters, [p for p in self.processes.values() if p.running()])

    def ready(self, k):
        """The readiness probe's command, run in the pod as the kubelet
        would: (ready, what it said)."""
        probe = self.container["readinessProbe"]["exec"]["command"]
        code, output = self.containers[k].exec(probe, pod_env(self.container, self.name(k)))
        return code == 0, output

    def all_serving(self):
        for k, process in self.processes.items():
            if not process.running():
                continue
            ready, output = self.ready(k)
            if not ready:
                fail(f"{self.name(k)} is not ready: {' '.join(self.container['readinessProbe']['exec']['command'])} "
                     f"says {output}")
            serving(self.addr(k), self.dns[k])

    def kill(self):
        for process in self.processes.values():
            process.kill()


def run_pods(tmp, docs, sts, container, image):
    pods = Pods(tmp, docs, sts, container, image, count=4)
    try:
        # First start; pod 2 is scheduled late and finds a cluster running.
        pods.start(0)
        ready, output = pods.ready(0)
        if ready or "no leader" not in output:
            fail(f"ferry-0 alone, without a quorum, should be not ready for want of a leader: {output}")
        pods.start(1)
        wait_for_leader(pods.servers())
        pods.start(2)
        pods.log_says(2, "joins the cluster")
        pods.wait({1, 2, 3})
        pods.all_serving()
        client = pods.hosts.localize(pod_env(container, pods.name(0))["FERRY_SERVER"])
        for name in pods.client_names:
            serving(pods.hosts.addr(name, 7070), name)
        publish_and_pull(client, "k8s-first", ["1", "2", "3"])
        refuses_strangers(client, pods.addr(0), pods.dns[0])
        log("  first start: ferry-0 alone is not ready (probe); ferry-0 and ferry-1 form the cluster, ferry-2 "
            "(late) joins it; all ready by the probe, SERVING over TLS as their pod names and the client "
            "Service's (one certificate from the Secret); TLS and tokens in force, not --insecure-plaintext; "
            "publish/pull with a token; no token, a token beyond its rights, plaintext, a wrong name refused")

        # Rolling update: a pod stopped, then started on its volume again.
        took = pods.stop(0)
        pods.start(0)
        pods.wait({1, 2, 3})
        log(f"  rolling restart of ferry-0: clean exit {took:.1f}s after SIGTERM, back in the cluster")

        # A dead pod replaced: removed from the cluster, new empty volume.
        pods.processes[2].kill()
        ferry(pods.servers(), "cluster", "remove-node", "3")
        pods.wipe(2)
        pods.start(2)
        pods.log_says(2, "joins the cluster")
        pods.wait({1, 2, 3})
        log("  ferry-2 replaced (remove-node 3, empty volume): it joins and catches up")

        # Scaled to 4 and back to 3 (remove-node first, then the pod goes).
        pods.start(3)
        pods.wait({1, 2, 3, 4})
        ferry(pods.servers(), "cluster", "remove-node", "4")
        pods.stop(3)
        pods.wait({1, 2, 3})
        pods.all_serving()
        publish_and_pull(pods.servers(), "k8s-after", ["4", "5"])
        log("  scaled to 4 (ferry-3 joins as node 4) and back to 3; publish/pull")
        for k in range(3):
            took = pods.stop(k)
            log(f"  {pods.name(k)}: clean exit {took:.1f}s after SIGTERM")
    finally:
        pods.kill()


def wait_for_leader(servers):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = cluster_status(servers)
        if status and status.get("leader_id"):
            return
        time.sleep(0.2)
    fail(f"ferry-0 and ferry-1 elected no leader: {cluster_status(servers)}")


def check(tmp):
    files = sorted(MANIFESTS.glob("*.yaml"))
    for version in VERSIONS:
        run([tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, *files])
    log(f"  kubernetes-validate --strict against {', '.join(VERSIONS)}: clean")
    docs = load()
    image = Image()
    sts, container = consistent(docs, image)
    log("  selectors, ports, probes, config mount, PodDisruptionBudget (1 unavailable of 3): consistent")
    run_pods(tmp, docs, sts, container, image)
