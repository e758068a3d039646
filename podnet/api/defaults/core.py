"""Defaulting of the core/v1 kinds, as Kubernetes' v1 defaulting (pkg/apis/core/v1) fills them.

Each defaulter mutates a decoded object in place and only fills what is unset: a field that
is present keeps its value, right or wrong, for validation to judge. A field of the wrong type
is left alone, never raised on. Allocation (cluster IPs, node ports, IP families) is the
server's, not done here.

`DEFAULTERS` maps (apiVersion, kind) to the defaulter.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
Defaulter = Callable[[Obj], None]

DEFAULT_TERMINATION_GRACE_PERIOD = 30
DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_CLIENT_IP_TIMEOUT = 10800  # 3 hours
DEFAULT_FILE_MODE = 0o644
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _obj(parent: Obj, name: str, *, create: bool = True) -> Obj | None:
    """The object at parent[name], created when unset; None when it has the wrong type."""
    value = parent.get(name)
    if value is None:
        if not create:
            return None
        value = parent[name] = {}
    return value if isinstance(value, dict) else None


def _objs(parent: Obj | None, name: str) -> list[Obj]:
    """The objects in the list at parent[name], skipping elements of the wrong type."""
    value = parent.get(name) if parent is not None else None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _set(obj: Obj, name: str, value: Any) -> None:
    if obj.get(name) is None:
        obj[name] = value


# -- pods -----------------------------------------------------------------------------------

def image_tag(image: str) -> str:
    """The tag of an image reference: "" with a digest and no tag, "latest" with neither."""
    name, at, _digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return "" if at else "latest"


def _default_probe(probe: Obj | None) -> None:
    if probe is None:
        return
    for field, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                         ("failureThreshold", 3)):
        if probe.get(field) in (None, 0):
            probe[field] = value
    _default_handler(probe)


def _default_handler(handler: Obj | None) -> None:
    if handler is None:
        return
    http = _obj(handler, "httpGet", create=False)
    if http is not None:
        if not http.get("path"):
            http["path"] = "/"
        if not http.get("scheme"):
            http["scheme"] = "HTTP"


def _default_container(ctr: Obj) -> None:
    if not ctr.get("imagePullPolicy"):
        image = ctr.get("image") if isinstance(ctr.get("image"), str) else ""
        ctr["imagePullPolicy"] = "Always" if image_tag(str(image)) == "latest" else "IfNotPresent"
    if not ctr.get("terminationMessagePath"):
        ctr["terminationMessagePath"] = "/dev/termination-log"
    if not ctr.get("terminationMessagePolicy"):
        ctr["terminationMessagePolicy"] = "File"
    for port in _objs(ctr, "ports"):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
    resources = _obj(ctr, "resources")
    if resources is not None:
        limits = resources.get("limits")
        if isinstance(limits, dict) and limits:
            requests = _obj(resources, "requests")
            if requests is not None:
                for name, value in limits.items():
                    requests.setdefault(name, value)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(_obj(ctr, probe, create=False))
    lifecycle = _obj(ctr, "lifecycle", create=False)
    if lifecycle is not None:
        for hook in ("postStart", "preStop"):
            _default_handler(_obj(lifecycle, hook, create=False))
    for env in _objs(ctr, "env"):
        value_from = _obj(env, "valueFrom", create=False)
        field_ref = _obj(value_from, "fieldRef", create=False) if value_from else None
        if field_ref is not None and not field_ref.get("apiVersion"):
            field_ref["apiVersion"] = "v1"


_VOLUME_SOURCES = (
    "emptyDir", "hostPath", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret",
    "nfs", "iscsi", "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs",
    "quobyte", "downwardAPI", "fc", "flexVolume", "configMap", "azureFile", "vsphereVolume",
    "photonPersistentDisk", "portworxVolume", "azureDisk", "storageos", "projected", "scaleIO",
    "csi", "ephemeral", "image",
)


def _default_volume(vol: Obj) -> None:
    if all(vol.get(s) is None for s in _VOLUME_SOURCES):
        vol["emptyDir"] = {}
    for source in ("secret", "configMap", "downwardAPI", "projected"):
        src = _obj(vol, source, create=False)
        if src is not None:
            _set(src, "defaultMode", DEFAULT_FILE_MODE)
    host_path = _obj(vol, "hostPath", create=False)
    if host_path is not None:
        _set(host_path, "type", "")
    downward = _obj(vol, "downwardAPI", create=False)
    for item in _objs(downward, "items"):
        field_ref = _obj(item, "fieldRef", create=False)
        if field_ref is not None and not field_ref.get("apiVersion"):
            field_ref["apiVersion"] = "v1"


def default_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec and what hangs off it (containers, volumes, probes)."""
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    _set(spec, "securityContext", {})
    _set(spec, "terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_PERIOD)
    if not spec.get("schedulerName"):
        spec["schedulerName"] = DEFAULT_SCHEDULER
    for field in ("containers", "initContainers", "ephemeralContainers"):
        for ctr in _objs(spec, field):
            _default_container(ctr)
    for vol in _objs(spec, "volumes"):
        _default_volume(vol)


def default_pod(pod: Obj) -> None:
    spec = _obj(pod, "spec")
    if spec is None:
        return
    default_pod_spec(spec)
    _set(spec, "enableServiceLinks", True)
    if spec.get("hostNetwork") is True:
        # With host networking every container port is a host port.
        for field in ("containers", "initContainers"):
            for ctr in _objs(spec, field):
                for port in _objs(ctr, "ports"):
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")


# -- services -----------------------------------------------------------------------------------

def default_service(svc: Obj) -> None:
    spec = _obj(svc, "spec")
    if spec is None:
        return
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        config = spec.get("sessionAffinityConfig")
        client_ip = config.get("clientIP") if isinstance(config, dict) else None
        timeout = client_ip.get("timeoutSeconds") if isinstance(client_ip, dict) else None
        if timeout is None and (config is None or isinstance(config, dict)) and (
                client_ip is None or isinstance(client_ip, dict)):
            spec["sessionAffinityConfig"] = {"clientIP": {
                "timeoutSeconds": DEFAULT_CLIENT_IP_TIMEOUT}}
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    stype = spec["type"]
    for port in _objs(spec, "ports"):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    external_ips = spec.get("externalIPs")
    accessible = stype in ("NodePort", "LoadBalancer") or (
        stype == "ClusterIP" and isinstance(external_ips, list) and bool(external_ips))
    if accessible and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if stype in ("ClusterIP", "NodePort", "LoadBalancer"):
        _set(spec, "internalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer":
        _set(spec, "allocateLoadBalancerNodePorts", True)
        status = _obj(svc, "status", create=False)
        load_balancer = _obj(status, "loadBalancer", create=False) if status else None
        for ingress in _objs(load_balancer, "ingress"):
            if ingress.get("ip") and ingress.get("ipMode") is None:
                ingress["ipMode"] = "VIP"
    # kube-apiserver's create strategy: a client that sets only the singular clusterIP gets
    # the plural too.
    cluster_ip = spec.get("clusterIP")
    if isinstance(cluster_ip, str) and cluster_ip and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [cluster_ip]


# -- the others --------------------------------------------------------------------------------

def default_namespace(ns: Obj) -> None:
    meta = _obj(ns, "metadata")
    name = meta.get("name") if meta is not None else None
    if meta is not None and isinstance(name, str) and name:
        labels = _obj(meta, "labels")
        if labels is not None:
            labels[NAMESPACE_NAME_LABEL] = name
    status = _obj(ns, "status")
    if status is not None and not status.get("phase"):
        status["phase"] = "Active"


def default_node(node: Obj) -> None:
    spec = _obj(node, "spec", create=False)
    if spec is not None:
        pod_cidr = spec.get("podCIDR")
        if isinstance(pod_cidr, str) and pod_cidr and not spec.get("podCIDRs"):
            spec["podCIDRs"] = [pod_cidr]
    status = _obj(node, "status", create=False)
    if status is not None and status.get("allocatable") is None:
        capacity = status.get("capacity")
        if isinstance(capacity, dict):
            status["allocatable"] = dict(capacity)


def default_secret(secret: Obj) -> None:
    if not secret.get("type"):
        secret["type"] = "Opaque"
    # stringData is write-only: Kubernetes folds it into data (it wins on a shared key).
    string_data = secret.get("stringData")
    data = secret.get("data")
    if not isinstance(string_data, dict) or not (data is None or isinstance(data, dict)):
        return
    if not all(isinstance(v, str) for v in string_data.values()):
        return
    merged = dict(data or {})
    for k, v in string_data.items():
        merged[k] = base64.b64encode(v.encode()).decode()
    secret["data"] = merged
    del secret["stringData"]


def default_event(event: Obj) -> None:
    """core/v1 Events have no defaults."""


DEFAULTERS: dict[tuple[str, str], Defaulter] = {
    ("v1", "Namespace"): default_namespace,
    ("v1", "Node"): default_node,
    ("v1", "Pod"): default_pod,
    ("v1", "Service"): default_service,
    ("v1", "Secret"): default_secret,
    ("v1", "Event"): default_event,
}
