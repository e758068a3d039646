"""The API objects `podnet up` creates for the cluster DNS and the ingress (pure: no I/O).

What kubeadm makes for CoreDNS, with podnet's own server in its place:

    Service kube-system/kube-dns     clusterIP = the service CIDR's 10th address (10.96.0.10);
                                     ports dns 53/UDP, dns-tcp 53/TCP, metrics 9153/TCP;
                                     selector k8s-app=kube-dns
    Pod kube-system/podnet-dns-<n>   n = 1 .. min(2, nodes), bound to node-<n> (one per node);
                                     dnsPolicy Default, so the server's own lookups go to the
                                     node's resolvers and never to itself; readiness on
                                     8181 /ready, liveness on 8080 /health

The pods run `python -m podnet.dns.main` with the interpreter and the source tree of the podnet
that brought the cluster up: podnet's runtime runs host programs in the pod's namespaces, so the
server reaches the API through the state directory's unix socket (a pod's network namespace
cannot reach the host's loopback) with the cluster's token file.

podnet has no Deployment controller: the pods are bare and bound by name. A DNS pod that is
deleted comes back at the next `podnet up`; a server that exits is restarted by its pod's
restartPolicy (Always).

Labels: `k8s-app: kube-dns` is the one everybody selects on (kubeadm's Service and Deployment,
the DNS debugging guide, monitoring rules), so podnet keeps it. `kubernetes.io/name` names the
implementation: kubeadm writes "CoreDNS", and tools read it (`kubectl cluster-info` prints it as
"<name> is running at ..."); podnet writes "podnet-dns", since claiming CoreDNS would send users
looking for a Corefile that does not exist.

The ingress (podnet.ingress), as ingress-nginx's manifests make theirs:

    Namespace ingress-podnet
    IngressClass podnet              spec.controller podnet.dev/ingress-controller; not the
                                     default class (a user marks it with the annotation)
    Service ingress-podnet/podnet-ingress
                                     LoadBalancer, 80 -> http, 443 -> https;
                                     externalTrafficPolicy Local: the node holding the pod
                                     announces the address, and the client's address survives
                                     to X-Forwarded-For
    Pod ingress-podnet/podnet-ingress
                                     on node-1: `python -m podnet.ingress.main`, which runs
                                     HAProxy as its child; readiness on 10254 /healthz (once
                                     HAProxy serves the first configuration), /metrics there
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

DNS_NAMESPACE = "kube-system"
DNS_SERVICE = "kube-dns"
DNS_POD_PREFIX = "podnet-dns-"
DNS_CONTAINER = "dns"
DNS_IMAGE = "podnet/dns"  # informational: podnet's runtime runs host programs
DNS_NAME_LABEL = "podnet-dns"  # kubernetes.io/name (kubeadm: CoreDNS)
APP_LABEL = ("k8s-app", "kube-dns")
CLUSTER_DOMAIN = "cluster.local"
SERVICE_IP_OFFSET = 10  # 10.96.0.10 in 10.96.0.0/12, kept free by the allocator's static band
MAX_REPLICAS = 2
DNS_PORT = 53
METRICS_PORT = 9153
HEALTH_PORT = 8080
READY_PORT = 8181
GRACE_SECONDS = 5
POD_RECORDS = ("insecure", "disabled")  # the server's --pod-records; kubeadm's default first
DEFAULT_POD_RECORDS = POD_RECORDS[0]
DNS_SERVER_MODULE = "podnet.dns.main"


class AddonError(ValueError):
    """A DNS setting that cannot be used, worded for the user."""


@dataclass(frozen=True)
class DnsSettings:
    """Everything the DNS objects depend on; the caller reads it from the cluster's state."""

    python: str  # the interpreter that runs the server
    pythonpath: str  # the source tree it imports podnet from ("" to leave PYTHONPATH unset)
    api_socket: str  # the API server's unix socket (ClusterState.api_socket)
    token_file: str  # the cluster's bearer token file
    service_cidr: str
    cluster_cidr: str
    upstreams: tuple[str, ...]  # IP or IP:PORT ([IPv6]:PORT), as parse_upstream writes them
    pod_records: str = DEFAULT_POD_RECORDS
    zone: str = CLUSTER_DOMAIN


@dataclass(frozen=True)
class DnsObjects:
    service: Obj
    pods: tuple[Obj, ...]


# -- addresses ----------------------------------------------------------------------------------


def dns_service_ip(service_cidr: str) -> str:
    """The cluster DNS's ClusterIP: the 10th address of the service CIDR (10.96.0.10)."""
    net = ipaddress.ip_network(service_cidr, strict=False)
    return str(net.network_address + SERVICE_IP_OFFSET)


def parse_upstream(text: str) -> str:
    """An upstream resolver given as IP, IP:PORT or [IPv6]:PORT, written canonically (the port
    left out when it is 53). AddonError when it is not one, or is a loopback address: the
    server runs in its pod's network namespace, where loopback is the pod itself."""
    raw = text.strip()
    host, port = raw, DNS_PORT
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise AddonError(f"invalid DNS upstream {text!r}: expected IP, IP:PORT or "
                             f"[IPv6]:PORT")
        if rest:
            port = _port(text, rest[1:])
    elif raw.count(":") == 1:
        host, _, port_text = raw.partition(":")
        port = _port(text, port_text)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise AddonError(f"invalid DNS upstream {text!r}: {host!r} is not an IP address") \
            from None
    if ip.is_loopback or ip.is_unspecified:
        raise AddonError(f"invalid DNS upstream {text!r}: a loopback or unspecified address "
                         "would be the DNS pod itself")
    if port == DNS_PORT:
        return str(ip)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def _port(text: str, port: str) -> int:
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise AddonError(f"invalid DNS upstream {text!r}: the port must be 1-65535")
    return int(port)


def upstreams_from_resolv_conf(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(usable, skipped): the `nameserver` lines of a resolv.conf, in order and without
    duplicates; loopback ones (systemd-resolved's 127.0.0.53, a local cache) are skipped, as
    they would be the DNS pod itself (the loop CoreDNS's `loop` plugin exists for)."""
    usable: list[str] = []
    skipped: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        addr = fields[1].split("%", 1)[0]  # an IPv6 zone index stays on the node
        try:
            value = parse_upstream(addr if ":" not in addr else f"[{addr}]")
        except AddonError:
            skipped.append(fields[1])
            continue
        if value not in usable:
            usable.append(value)
    return tuple(usable), tuple(skipped)


# -- the objects --------------------------------------------------------------------------------


def dns_nodes(nodes: Sequence[str], replicas: int = MAX_REPLICAS) -> list[str]:
    """Where the DNS pods go: the first `replicas` nodes, one pod each (none without nodes)."""
    return list(nodes[:replicas])


def pod_name(index: int) -> str:
    """podnet-dns-1, podnet-dns-2, ... (1-based)."""
    return f"{DNS_POD_PREFIX}{index}"


def labels() -> dict[str, str]:
    return {APP_LABEL[0]: APP_LABEL[1]}


def label_selector() -> str:
    return f"{APP_LABEL[0]}={APP_LABEL[1]}"


def dns_command(s: DnsSettings) -> list[str]:
    """The server's command line in a DNS pod."""
    argv = [s.python, "-m", DNS_SERVER_MODULE,
            "--api", f"unix://{s.api_socket}", "--token-file", s.token_file,
            "--listen", "0.0.0.0", "--port", str(DNS_PORT), "--zone", s.zone]
    for upstream in s.upstreams:
        argv += ["--upstream", upstream]
    return [*argv, "--pod-records", s.pod_records,
            "--health-port", str(HEALTH_PORT), "--ready-port", str(READY_PORT),
            "--metrics-port", str(METRICS_PORT),
            "--service-cidr", s.service_cidr, "--cluster-cidr", s.cluster_cidr]


def dns_service(s: DnsSettings) -> Obj:
    """kube-system/kube-dns, as kubeadm makes it (with podnet's kubernetes.io/name)."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": DNS_SERVICE, "namespace": DNS_NAMESPACE,
            "labels": {**labels(), "kubernetes.io/cluster-service": "true",
                       "kubernetes.io/name": DNS_NAME_LABEL},
            "annotations": {"prometheus.io/port": str(METRICS_PORT),
                            "prometheus.io/scrape": "true"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": dns_service_ip(s.service_cidr),
            "selector": labels(),
            "ports": [
                {"name": "dns", "port": DNS_PORT, "protocol": "UDP", "targetPort": DNS_PORT},
                {"name": "dns-tcp", "port": DNS_PORT, "protocol": "TCP",
                 "targetPort": DNS_PORT},
                {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP",
                 "targetPort": METRICS_PORT},
            ],
        },
    }


def _http_probe(port: int, path: str, **timing: int) -> Obj:
    return {"httpGet": {"path": path, "port": port, "scheme": "HTTP"}, **timing}


def dns_pod(s: DnsSettings, index: int, node: str) -> Obj:
    """DNS pod number `index` (1-based), bound to `node`."""
    env = [{"name": "PYTHONUNBUFFERED", "value": "1"}]
    if s.pythonpath:
        env.insert(0, {"name": "PYTHONPATH", "value": s.pythonpath})
    container = {
        "name": DNS_CONTAINER,
        "image": DNS_IMAGE,
        "command": dns_command(s),
        "env": env,
        "ports": [
            {"name": "dns", "containerPort": DNS_PORT, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": DNS_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        # Ready once the server has listed the API; probed every second so that `up` (which
        # waits for it) is not held up by kubelet's default 10 s period.
        "readinessProbe": _http_probe(READY_PORT, "/ready", periodSeconds=1,
                                      timeoutSeconds=1, failureThreshold=3),
        # kubeadm's CoreDNS liveness timings.
        "livenessProbe": _http_probe(HEALTH_PORT, "/health", initialDelaySeconds=60,
                                     periodSeconds=10, timeoutSeconds=5, failureThreshold=5),
    }
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name(index), "namespace": DNS_NAMESPACE, "labels": labels()},
        "spec": {
            "nodeName": node,
            "dnsPolicy": "Default",
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": GRACE_SECONDS,
            "containers": [container],
        },
    }


def dns_objects(s: DnsSettings, nodes: Sequence[str]) -> DnsObjects:
    """The Service and the pods for a cluster with `nodes` (no nodes: no pods)."""
    pods = tuple(dns_pod(s, i, node) for i, node in enumerate(dns_nodes(nodes), start=1))
    return DnsObjects(dns_service(s), pods)


def pod_ready(pod: Obj) -> bool:
    """Whether a pod has condition Ready=True."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
               for c in conditions)


# -- the ingress ------------------------------------------------------------------------------

INGRESS_NAMESPACE = "ingress-podnet"
INGRESS_NAME = "podnet-ingress"  # the pod and the Service
INGRESS_CLASS = "podnet"  # = podnet.ingress.routes.CLASS_NAME (not imported: it is heavy)
INGRESS_CONTROLLER = "podnet.dev/ingress-controller"  # = podnet.ingress.routes.CONTROLLER
INGRESS_CONTAINER = "controller"
INGRESS_IMAGE = "podnet/ingress"  # informational, as DNS_IMAGE
INGRESS_MODULE = "podnet.ingress.main"
INGRESS_NODE_INDEX = 0  # node-1
INGRESS_HTTP_PORT = 80
INGRESS_HTTPS_PORT = 443
INGRESS_HEALTH_PORT = 10254  # the controller's /healthz and /metrics (ingress-nginx's port)
INGRESS_GRACE_SECONDS = 10
INGRESS_LABELS = (("app.kubernetes.io/name", "podnet-ingress"),
                  ("app.kubernetes.io/component", "controller"))


@dataclass(frozen=True)
class IngressSettings:
    """Everything the ingress objects depend on; the caller reads it from the cluster's
    state."""

    python: str  # the interpreter that runs the controller
    pythonpath: str  # the source tree it imports podnet from ("" to leave PYTHONPATH unset)
    api_socket: str  # the API server's unix socket
    token_file: str  # the cluster's bearer token file
    state_dir: str  # the pod's own directory: HAProxy's configuration, maps, certificates


@dataclass(frozen=True)
class IngressObjects:
    namespace: Obj
    ingress_class: Obj
    service: Obj
    pod: Obj | None  # None without nodes


def ingress_labels() -> dict[str, str]:
    return dict(INGRESS_LABELS)


def ingress_label_selector() -> str:
    return ",".join(f"{k}={v}" for k, v in INGRESS_LABELS)


def ingress_publish_service() -> str:
    """The Service whose LoadBalancer address goes into the Ingresses' status."""
    return f"{INGRESS_NAMESPACE}/{INGRESS_NAME}"


def ingress_command(s: IngressSettings) -> list[str]:
    """The controller's command line in the ingress pod."""
    return [s.python, "-m", INGRESS_MODULE,
            "--api", f"unix://{s.api_socket}", "--token-file", s.token_file,
            "--state-dir", s.state_dir, "--publish-service", ingress_publish_service(),
            "--ingress-class", INGRESS_CLASS, "--controller-name", INGRESS_CONTROLLER,
            "--http-port", str(INGRESS_HTTP_PORT), "--https-port", str(INGRESS_HTTPS_PORT),
            "--health-port", str(INGRESS_HEALTH_PORT)]


def ingress_namespace() -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": INGRESS_NAMESPACE,
                         "labels": {"app.kubernetes.io/name": INGRESS_NAME}}}


def ingress_class() -> Obj:
    """The `podnet` IngressClass: podnet's controller, not the cluster's default class."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": INGRESS_CLASS, "labels": ingress_labels()},
            "spec": {"controller": INGRESS_CONTROLLER}}


def ingress_service() -> Obj:
    """ingress-podnet/podnet-ingress: the LoadBalancer in front of the ingress pod."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": INGRESS_NAME, "namespace": INGRESS_NAMESPACE,
                     "labels": ingress_labels()},
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "selector": ingress_labels(),
            "ports": [
                {"name": "http", "port": INGRESS_HTTP_PORT, "protocol": "TCP",
                 "targetPort": "http"},
                {"name": "https", "port": INGRESS_HTTPS_PORT, "protocol": "TCP",
                 "targetPort": "https"},
            ],
        },
    }


def ingress_pod(s: IngressSettings, node: str) -> Obj:
    """The controller's pod, bound to `node`."""
    env = [{"name": "PYTHONUNBUFFERED", "value": "1"},
           {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "POD_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    if s.pythonpath:
        env.insert(0, {"name": "PYTHONPATH", "value": s.pythonpath})
    container = {
        "name": INGRESS_CONTAINER,
        "image": INGRESS_IMAGE,
        "command": ingress_command(s),
        "env": env,
        "ports": [
            {"name": "http", "containerPort": INGRESS_HTTP_PORT, "protocol": "TCP"},
            {"name": "https", "containerPort": INGRESS_HTTPS_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": INGRESS_HEALTH_PORT, "protocol": "TCP"},
        ],
        # Ready once HAProxy serves the first configuration; probed every second so that
        # `up` (which waits for it) is not held up by kubelet's default 10 s period.
        "readinessProbe": _http_probe(INGRESS_HEALTH_PORT, "/healthz", periodSeconds=1,
                                      timeoutSeconds=1, failureThreshold=3),
        # ingress-nginx's liveness timings.
        "livenessProbe": _http_probe(INGRESS_HEALTH_PORT, "/healthz", initialDelaySeconds=10,
                                     periodSeconds=10, timeoutSeconds=1, failureThreshold=5),
    }
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": INGRESS_NAME, "namespace": INGRESS_NAMESPACE,
                     "labels": ingress_labels()},
        "spec": {
            "nodeName": node,
            "dnsPolicy": "Default",  # it needs no cluster DNS, and must not wait for it
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": INGRESS_GRACE_SECONDS,
            "containers": [container],
        },
    }


def ingress_node(nodes: Sequence[str]) -> str | None:
    """Where the ingress pod goes: node-1 (the first node); None without nodes."""
    return nodes[INGRESS_NODE_INDEX] if len(nodes) > INGRESS_NODE_INDEX else None


def ingress_objects(s: IngressSettings, nodes: Sequence[str]) -> IngressObjects:
    """The namespace, the class, the Service and the pod for a cluster with `nodes`."""
    node = ingress_node(nodes)
    return IngressObjects(ingress_namespace(), ingress_class(), ingress_service(),
                          None if node is None else ingress_pod(s, node))


def ingress_address(service: Obj) -> str | None:
    """The LoadBalancer address of the ingress Service, once it has one."""
    for item in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if isinstance(item, dict) and isinstance(item.get("ip"), str) and item["ip"]:
            return str(item["ip"])
    return None
