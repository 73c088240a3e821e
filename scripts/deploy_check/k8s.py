"""The Kubernetes manifests (deploy/kubernetes): validated against the
Kubernetes API schemas (kubernetes-validate --strict), checked against each
other and the image (selectors, ports, probes, the config mount, the
disruption budget), then the StatefulSet's pods run as the kubelet would
start them from the image: the container's command, args and env with
$(VAR) references and the downward API filled in, the ConfigMap and the
volume mounted, each pod's DNS name on a loopback address of its own.
The pods then go through what deploy/RUNBOOK.md tells an operator to do:
first start (one pod late), rolling restart, replacing a dead pod, scaling
up and down."""

import re
import shutil
import signal
import time
from pathlib import Path

import yaml

from common import (
    DEPLOY,
    Hosts,
    cluster_status,
    fail,
    ferry,
    health,
    log,
    publish_and_pull,
    run,
    tool,
    wait_cluster,
    wait_listening,
)
from container import Container
from dockerfile import Image

MANIFESTS = DEPLOY / "kubernetes"
NAMESPACE = "ferry-check"
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
    probe = container["readinessProbe"].get("grpc", {}).get("port")
    if probe != port_names.get("grpc"):
        fail(f"the readiness probe asks gRPC health on {probe}, not the grpc port")
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
    for volume in pod["spec"]["volumes"]:
        if "configMap" in volume:
            data = docs.get(("ConfigMap", volume["configMap"]["name"])) or fail(f"no ConfigMap for {volume}")
            if mounts.get(volume["name"]) != str(Path(config).parent) or Path(config).name not in data["data"]:
                fail(f"FERRY_CONFIG {config} is not the ConfigMap's file as mounted")
    return sts, container


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
        self.hosts = Hosts(self.dns, image.expose, aliases)
        volumes = sts["spec"]["template"]["spec"]["volumes"]
        self.config = next(docs[("ConfigMap", v["configMap"]["name"])] for v in volumes if "configMap" in v)
        self.mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        self.containers, self.processes, self.log_start = {}, {}, {}

    def name(self, k):
        return f"{self.sts['metadata']['name']}-{k}"

    def addr(self, k):
        return self.hosts.addr(self.dns[k], 7070)

    def servers(self):
        return ",".join(self.addr(k) for k, p in self.processes.items() if p.running())

    def start(self, k):
        if k not in self.containers:
            pod = Container(self.image, self.dns[k], self.hosts, self.tmp / self.name(k), title=self.name(k))
            # The ConfigMap's directory replaces the image's.
            config_dir = pod.path(self.mounts["config"])
            shutil.rmtree(config_dir, ignore_errors=True)
            config_dir.mkdir(parents=True)
            for key, text in self.config["data"].items():
                (config_dir / key).write_text(pod.localize(text))
            self.containers[k] = pod
        env = pod_env(self.container, self.name(k))
        log_file = self.tmp / f"{self.name(k)}.log"
        self.log_start[k] = log_file.stat().st_size if log_file.exists() else 0
        self.processes[k] = self.containers[k].start(pod_argv(self.container, self.image, env), env, self.tmp)
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

    def all_serving(self):
        for k, process in self.processes.items():
            if process.running() and health(self.addr(k)) != "SERVING":
                fail(f"{self.name(k)} is not ready: gRPC health says {health(self.addr(k))}")

    def kill(self):
        for process in self.processes.values():
            process.kill()


def run_pods(tmp, docs, sts, container, image):
    pods = Pods(tmp, docs, sts, container, image, count=4)
    try:
        # First start; pod 2 is scheduled late and finds a cluster running.
        pods.start(0)
        pods.start(1)
        wait_for_leader(pods.servers())
        pods.start(2)
        pods.log_says(2, "joins the cluster")
        pods.wait({1, 2, 3})
        pods.all_serving()
        client = pods.hosts.localize(pod_env(container, pods.name(0))["FERRY_SERVER"])
        publish_and_pull(client, "k8s-first", ["1", "2", "3"])
        log("  first start: ferry-0 and ferry-1 form the cluster, ferry-2 (late) joins it; all ready")

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
