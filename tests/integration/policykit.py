"""What the NetworkPolicy integration tests share: the x/y/z fixture, real probes, the analyzer's
matrix, and the comparison of the two with a written expectation.

The fixture is the model of the Kubernetes e2e netpol suite (its facts, not its code):

    namespaces x, y, z          labels ns=<name> (+ kubernetes.io/metadata.name, set by the API)
    pods a, b, c in each        labels pod=<name>; each on its own node of a 3-node lab, so every
                                namespace has one pod per node (x/a node-1, x/b node-2, ...)
    ports                       80 and 81 on TCP and UDP, containerPorts named serve-80-tcp,
                                serve-80-udp, serve-81-tcp, serve-81-udp (podnet's echo server)

    cluster CIDR 10.244.0.0/16  one /24 per node; the cluster DNS at 10.96.0.10 (kube-system)

A case writes its policies, waits until every node's enforcer has compiled a state at least as
new as the last write (`<node state>/policy-sync.json`), then probes the whole matrix
(9 x 9 pods x {80,81} x {TCP,UDP}) with real packets from inside each pod (tools/policy_probe.py,
nine probers at once), computes the analyzer's matrix from the live objects
(podnet.policy.model + podnet.policy.analyze), and asserts probe == analyzer == expected.
Nothing is retried until it matches: one wait for enforcement, one probe round.
"""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from conftest import TestCluster, module_lab
from labkit import wait_for

from podnet import runtime
from podnet.api.resources import Resource, lookup
from podnet.client.http import ApiError, Client
from podnet.cluster import addons

PROBE = Path(__file__).parent / "tools" / "policy_probe.py"
NAMESPACES = ("x", "y", "z")
POD_NAMES = ("a", "b", "c")
NODES = ("node-1", "node-2", "node-3")
SERVICES: tuple[tuple[int, str], ...] = ((80, "TCP"), (80, "UDP"), (81, "TCP"), (81, "UDP"))
PROBE_TIMEOUT = 1.5  # seconds a prober waits for the targets that neither answer nor reject
# UDP source ports of the probers, a fresh block each round (tools/policy_probe.py -p): below
# the kernel's ephemeral range, and enough of them that a 5-tuple comes back only after its
# conntrack entry (30 s for UDP that saw a reply within its first 2 s) has long expired.
UDP_PORTS = (10000, 30000)
ENFORCE_TIMEOUT = 30.0
NS_NAME_LABEL = "kubernetes.io/metadata.name"
# The cluster DNS needs an upstream; the tests only ask it cluster names, so none is ever asked.
UNUSED_UPSTREAM = "172.18.0.2:5300"

Cell = tuple[str, str, int, str]  # (from "ns/pod", to "ns/pod", port, protocol)
Matrix = dict[Cell, bool]


def res(kind: str) -> Resource:
    r = lookup(kind)
    assert r is not None, kind
    return r


PODS_R, NAMESPACES_R, POLICIES_R, NODES_R = (res("Pod"), res("Namespace"),
                                             res("NetworkPolicy"), res("Node"))


class Peer(NamedTuple):
    """One pod of the fixture, as an expectation sees it."""

    ns: str
    pod: str

    @property
    def key(self) -> str:
        return f"{self.ns}/{self.pod}"


KEYS = tuple(f"{ns}/{p}" for ns in NAMESPACES for p in POD_NAMES)
PEERS = tuple(Peer(ns, p) for ns in NAMESPACES for p in POD_NAMES)


def pod_labels(name: str) -> dict[str, str]:
    return {"pod": name}


def ns_labels(name: str) -> dict[str, str]:
    return {"ns": name, NS_NAME_LABEL: name}


def node_of(ns: str, pod: str) -> str:
    """Each namespace has one pod per node; pod a is on a different node in each namespace."""
    return NODES[(NAMESPACES.index(ns) + POD_NAMES.index(pod)) % len(NODES)]


def fixture_pod(ns: str, name: str) -> dict[str, Any]:
    ports = [{"name": f"serve-{port}-{proto.lower()}", "containerPort": port, "protocol": proto}
             for port, proto in SERVICES]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": pod_labels(name)},
            "spec": {"nodeName": node_of(ns, name), "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "cont-80-81", "image": "podnet/echo",
                                     "ports": ports}]}}


# -- a lab for a whole module ------------------------------------------------------------------


def policy_lab(root: Path, nodes: int = 3,
               dns: bool = True) -> contextlib.AbstractContextManager[TestCluster]:
    """The fixture's lab, kept for a module (conftest.module_lab)."""
    return module_lab(root, "p", nodes=nodes, dns=dns,
                      dns_upstreams=[UNUSED_UPSTREAM] if dns else None)


# -- the fixture -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixturePod:
    ns: str
    name: str
    ip: str
    node: str
    uid: str

    @property
    def key(self) -> str:
        return f"{self.ns}/{self.name}"


@dataclass
class Probed:
    """One probe round: the verdicts, and what each prober said (True, False or a text)."""

    matrix: Matrix
    raw: dict[Cell, Any]
    seconds: float

    def anomalies(self) -> dict[Cell, Any]:
        """Cells that neither connected nor were rejected at once (timeouts, wrong answers)."""
        return {c: v for c, v in self.raw.items() if v is not True and v is not False}


@dataclass
class Net:
    """The x/y/z fixture on a lab, and everything a case does with it."""

    lab: TestCluster
    pods: dict[str, FixturePod] = field(default_factory=dict)
    last_rv: int = 0
    timings: dict[str, list[float]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)  # probes answered/rejected/...
    next_udp_port: int = UDP_PORTS[0]

    @property
    def client(self) -> Client:
        return self.lab.client

    # -- building and resetting ---------------------------------------------------------------

    def create(self) -> None:
        for ns in NAMESPACES:
            self.client.create(NAMESPACES_R, None, {
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"ns": ns}}})
        for ns in NAMESPACES:
            for p in POD_NAMES:
                self.client.create(PODS_R, ns, fixture_pod(ns, p))
        for ns in NAMESPACES:
            for p in POD_NAMES:
                obj = wait_for(f"pod {ns}/{p} Ready", functools.partial(self._ready, ns, p),
                               timeout=90)
                self.pods[f"{ns}/{p}"] = FixturePod(
                    ns, p, obj["status"]["podIP"], obj["spec"]["nodeName"],
                    obj["metadata"]["uid"])
        for ns in NAMESPACES:
            got = self.client.get(NAMESPACES_R, None, ns)["metadata"]["labels"]
            assert got == ns_labels(ns), got

    def _ready(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            obj = self.client.get(PODS_R, ns, name)
        except ApiError:
            return None
        return obj if addons.pod_ready(obj) and obj["status"].get("podIP") else None

    def note(self, obj: Mapping[str, Any]) -> int:
        """Remember the resourceVersion of a write's answer (the last write is waited for)."""
        rv = int(obj["metadata"]["resourceVersion"])
        self.last_rv = max(self.last_rv, rv)
        return rv

    def reset(self) -> bool:
        """Delete every NetworkPolicy and restore the fixture's labels. True if it wrote."""
        wrote = False
        for pol in self.client.list(POLICIES_R, None)["items"]:
            meta = pol["metadata"]
            self.note(self.client.delete(POLICIES_R, meta["namespace"], meta["name"]))
            wrote = True
        for ns in NAMESPACES:
            have = self.client.get(NAMESPACES_R, None, ns)["metadata"].get("labels") or {}
            if have != ns_labels(ns):
                self.set_ns_labels(ns, {"ns": ns})
                wrote = True
        for key in KEYS:
            ns, p = key.split("/")
            have = self.client.get(PODS_R, ns, p)["metadata"].get("labels") or {}
            if have != pod_labels(p):
                self.set_pod_labels(key, pod_labels(p))
                wrote = True
        return wrote

    # -- writing ------------------------------------------------------------------------------

    def apply(self, *policies: Mapping[str, Any]) -> None:
        for pol in policies:
            self.note(self.client.create(POLICIES_R, pol["metadata"]["namespace"], pol))

    def delete_policy(self, ns: str, name: str) -> None:
        self.note(self.client.delete(POLICIES_R, ns, name))

    def set_pod_labels(self, key: str, labels: Mapping[str, str]) -> None:
        """Make the pod's labels exactly `labels`."""
        ns, name = key.split("/")
        have = self.client.get(PODS_R, ns, name)["metadata"].get("labels") or {}
        patch = {k: None for k in have if k not in labels} | dict(labels)
        self.note(self.client.patch(PODS_R, ns, name, {"metadata": {"labels": patch}}))

    def set_ns_labels(self, ns: str, labels: Mapping[str, str]) -> None:
        """Make the namespace's labels exactly `labels` (+ the name label the API keeps)."""
        have = self.client.get(NAMESPACES_R, None, ns)["metadata"].get("labels") or {}
        want = {**labels, NS_NAME_LABEL: ns}
        patch = {k: None for k in have if k not in want} | want
        self.note(self.client.patch(NAMESPACES_R, None, ns, {"metadata": {"labels": patch}}))

    # -- enforcement --------------------------------------------------------------------------

    def sync_files(self) -> dict[str, Path]:
        return {n: self.lab.state.node_dir(n) / "policy-sync.json" for n in NODES}

    def enforced_rv(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for node, path in self.sync_files().items():
            try:
                out[node] = int(json.loads(path.read_text())["resourceVersion"])
            except (OSError, ValueError, KeyError, TypeError):
                out[node] = None
        return out

    def wait_enforced(self, rv: int | None = None, timeout: float = ENFORCE_TIMEOUT) -> float:
        """Wait until every node enforces a state compiled from objects at least as new as `rv`
        (default: the last write). Returns the seconds waited."""
        want = self.last_rv if rv is None else rv
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            have = self.enforced_rv()
            if all(v is not None and v >= want for v in have.values()):
                took = time.monotonic() - t0
                self.timings.setdefault("enforce", []).append(took)
                return took
            if time.monotonic() > deadline:
                raise AssertionError(f"policy not enforced after {timeout}s: want "
                                     f"resourceVersion >= {want}, nodes have {have}")
            time.sleep(0.01)

    # -- probing ------------------------------------------------------------------------------

    def targets(self, services: Iterable[tuple[int, str]] = SERVICES) -> list[str]:
        return [f"{p.ip}:{port}/{proto.lower()}" for p in self.pods.values()
                for port, proto in services]

    def udp_port_block(self, size: int) -> int:
        """The first of `size` UDP source ports no recent round has used."""
        if self.next_udp_port + size > UDP_PORTS[1]:
            self.next_udp_port = UDP_PORTS[0]
        first = self.next_udp_port
        self.next_udp_port += size
        return first

    def prober_argv(self, key: str, targets: list[str], timeout: float = PROBE_TIMEOUT,
                    first_udp_port: int | None = None) -> list[str]:
        p = self.pods[key]
        prefix = runtime.exec_argv(self.lab.state.node_dir(p.node), p.uid)
        ports = [] if first_udp_port is None else ["-p", str(first_udp_port)]
        return [*prefix, sys.executable, "-I", "-S", str(PROBE), "-t", str(timeout), *ports,
                *targets]

    def probe(self, services: Iterable[tuple[int, str]] = SERVICES,
              timeout: float = PROBE_TIMEOUT) -> Probed:
        """One round: every pod probes every pod on every service, the nine probers at once."""
        services = tuple(services)
        targets = self.targets(services)
        first = self.udp_port_block(sum(t.endswith("/udp") for t in targets))
        t0 = time.monotonic()
        procs = {key: subprocess.Popen(self.prober_argv(key, targets, timeout, first),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True) for key in KEYS}
        by_ip = {p.ip: k for k, p in self.pods.items()}
        raw: dict[Cell, Any] = {}
        for src, proc in procs.items():
            out, err = proc.communicate(timeout=timeout + 30)
            assert proc.returncode == 0, f"prober in {src} failed: {err}"
            for target, verdict in json.loads(out).items():
                addr, proto = target.rsplit("/", 1)
                ip, port = addr.rsplit(":", 1)
                raw[(src, by_ip[ip], int(port), proto.upper())] = verdict
        took = time.monotonic() - t0
        self.timings.setdefault("probe", []).append(took)
        for v in raw.values():
            kind = {True: "answered", False: "rejected", "timeout": "timed out"}.get(v, "other")
            self.outcomes[kind] = self.outcomes.get(kind, 0) + 1
        return Probed({c: v is True for c, v in raw.items()}, raw, took)

    def in_pod(self, key: str, *argv: str, timeout: float = 30.0
               ) -> subprocess.CompletedProcess[str]:
        """Run argv in the pod's network, UTS and mount namespaces (its own resolv.conf)."""
        p = self.pods[key]
        prefix = runtime.exec_argv(self.lab.state.node_dir(p.node), p.uid)
        return subprocess.run([*prefix, *argv], capture_output=True, text=True,
                              timeout=timeout)

    def pod_cidr(self, node: str) -> str:
        cidr: str = self.client.get(NODES_R, None, node)["spec"]["podCIDR"]
        return cidr

    # -- the analyzer -------------------------------------------------------------------------

    def live_objects(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                    list[dict[str, Any]]]:
        return (self.client.list(PODS_R, None)["items"],
                self.client.list(NAMESPACES_R, None)["items"],
                self.client.list(POLICIES_R, None)["items"])

    def analyzer(self, services: Iterable[tuple[int, str]] = SERVICES) -> Matrix:
        """The analyzer's matrix over the fixture's pods, from the live objects."""
        t0 = time.monotonic()
        pods, namespaces, policies = self.live_objects()
        out = analyzer_matrix(pods, namespaces, policies, KEYS, tuple(services))
        self.timings.setdefault("analyze", []).append(time.monotonic() - t0)
        return out

    # -- one case -----------------------------------------------------------------------------

    def check(self, expected: Matrix, title: str = "",
              services: Iterable[tuple[int, str]] = SERVICES) -> Probed:
        """Wait for enforcement of the last write, probe, analyze, and assert that the three
        matrices agree (the diff printed when they do not)."""
        services = tuple(services)
        self.wait_enforced()
        probed = self.probe(services)
        analyzed = self.analyzer(services)
        report = compare(probed, analyzed, expected, services)
        if report:
            raise AssertionError(f"{title}\n{report}")
        broken = {c: v for c, v in probed.anomalies().items() if v != "timeout"}
        assert not broken, f"{title}: probes that neither connected nor were denied: {broken}"
        return probed


# -- the analyzer, through the package's public functions --------------------------------------


def analyzer_matrix(pods: list[dict[str, Any]], namespaces: list[dict[str, Any]],
                    policies: list[dict[str, Any]], keys: Iterable[str],
                    services: tuple[tuple[int, str], ...]) -> Matrix:
    """compile_model over the objects as the API gives them, then analyze.matrix over the
    given pods and services. model.decide, the analyzer's other path (what `explain` uses),
    is asked every cell too: the two must agree before the matrix is compared with anything."""
    from podnet.policy import analyze, model

    compiled = model.compile_model(
        [p for p in (model.pod_from_api(o) for o in pods) if p is not None],
        {n["metadata"]["name"]: dict(n["metadata"].get("labels") or {}) for n in namespaces},
        policies)
    keys = list(keys)
    m = analyze.matrix(compiled, keys, [(proto, port) for port, proto in services])
    out: Matrix = {(s, d, port, proto): allowed
                   for (s, d, proto, port), allowed in m.cells.items()}
    split = [(c, out.get(c), model.decide(compiled, c[0], c[1], c[3], c[2]).allowed)
             for c in ((s, d, port, proto) for s in keys for d in keys
                       for port, proto in services)]
    split = [x for x in split if x[1] != x[2]]
    assert not split, ("analyze.matrix and model.decide disagree (cell, matrix, decide): "
                       f"{split[:20]}")
    return out


# -- expectations ------------------------------------------------------------------------------

Rule = Callable[[Peer, Peer, int, str], bool]


def everyone(src: Peer, dst: Peer, port: int, proto: str) -> bool:
    return True


def expect(ingress: Rule = everyone, egress: Rule = everyone,
           services: Iterable[tuple[int, str]] = SERVICES) -> Matrix:
    """The expected matrix: a connection needs egress at the client and ingress at the server;
    a pod always reaches itself. `ingress`/`egress` are written by hand in each case."""
    out: Matrix = {}
    for s in PEERS:
        for d in PEERS:
            for port, proto in services:
                out[(s.key, d.key, port, proto)] = s == d or (
                    egress(s, d, port, proto) and ingress(s, d, port, proto))
    return out


def from_table(text: str, services: Iterable[tuple[int, str]] = SERVICES) -> Matrix:
    """A 9x9 truth table, the same for each of `services`: a header of destination pods, then
    one row per source pod, '+' allowed and '-' denied:

            x/a x/b x/c y/a ...
        x/a  +   +   -   + ...
    """
    lines = [ln.split() for ln in text.strip().splitlines()]
    cols = lines[0]
    out: Matrix = {}
    for row in lines[1:]:
        src, cells = row[0], row[1:]
        assert len(cells) == len(cols), row
        for dst, cell in zip(cols, cells, strict=True):
            assert cell in ("+", "-"), cell
            for service in services:
                out[(src, dst, *service)] = cell == "+"
    assert {c[0] for c in out} == set(KEYS) == {c[1] for c in out}, "a table covers all pods"
    return out


# -- comparing ---------------------------------------------------------------------------------


def sign(allowed: bool) -> str:
    return "+" if allowed else "-"


def compare(probed: Probed, analyzed: Matrix, expected: Matrix,
            services: Iterable[tuple[int, str]] = SERVICES) -> str:
    """'' when probe, analyzer and expectation agree on every cell; else a readable report:
    one 9x9 table per differing service (rows from, columns to; a differing cell shows
    probe/analyzer/expected) and the list of differing pairs."""
    cells = set(probed.matrix) | set(analyzed) | set(expected)
    missing = [c for c in cells
               if c not in probed.matrix or c not in analyzed or c not in expected]
    if missing:
        return f"cells missing from a matrix: {sorted(missing)[:10]}"
    bad = sorted(c for c in cells
                 if not probed.matrix[c] == analyzed[c] == expected[c])
    if not bad:
        return ""
    out = [f"{len(bad)} cell(s) differ ('+' allowed, '-' denied; a differing cell is "
           "probe/analyzer/expected; rows from, columns to)"]
    for port, proto in services:
        if not any(c[2:] == (port, proto) for c in bad):
            continue
        out.append(f"\n{port}/{proto}")
        out.append("       " + "".join(f"{k:>6}" for k in KEYS))
        for s in KEYS:
            row = []
            for d in KEYS:
                c = (s, d, port, proto)
                trio = (probed.matrix[c], analyzed[c], expected[c])
                row.append(sign(trio[0]) if len(set(trio)) == 1
                           else "".join(sign(v) for v in trio))
            out.append(f"  {s:<5}" + "".join(f"{v:>6}" for v in row))
    out.append("")
    for c in bad:
        s, d, port, proto = c
        out.append(f"{s} -> {d} {port}/{proto}: probe {word(probed.matrix[c])} "
                   f"({probed.raw.get(c)!r}), analyzer {word(analyzed[c])}, expected "
                   f"{word(expected[c])}")
    return "\n".join(out)


def word(allowed: bool) -> str:
    return "allowed" if allowed else "denied"


def to_yaml(policies: Iterable[Mapping[str, Any]]) -> str:
    return yaml.safe_dump_all([dict(p) for p in policies], sort_keys=False)


def policy(ns: str, name: str, **spec: Any) -> dict[str, Any]:
    """A NetworkPolicy; spec.podSelector defaults to {} (every pod of the namespace)."""
    spec.setdefault("podSelector", {})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def summary(timings: Mapping[str, list[float]]) -> str:
    parts = []
    for what, xs in sorted(timings.items()):
        if xs:
            xs = sorted(xs)
            parts.append(f"{what}: n={len(xs)} median {xs[len(xs) // 2] * 1000:.0f} ms, "
                         f"max {xs[-1] * 1000:.0f} ms")
    return "; ".join(parts)
