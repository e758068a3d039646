"""Where a cluster lives on disk, and making sure everything it needs is there.

A cluster is a directory `<root>/<name>/`; the root is $PODNET_STATE_ROOT or /var/lib/podnet,
the name --name, $PODNET_CLUSTER or "podnet". Inside:

    cluster.json              name, bind address, port, CIDRs, node port range, creation time,
                              and the lab: node count, LAN CIDR, routing backend, CNI plugin,
                              LoadBalancer pool (lb_pool; absent: LAN offsets 200-249),
                              whether the cluster DNS runs (dns; absent: no), its upstreams
                              (dns_upstreams; absent: the node's resolv.conf) and pod records
                              (dns_pod_records; absent: insecure)
    pki/ca.crt, pki/ca.key    the cluster's own CA (keys are 0600)
    pki/server.crt, .key      the API server's serving certificate
    token                     the admin bearer token (0600)
    kubeconfig                for kubectl: the server URL, the CA and the token (0600)
    store.db                  the API server's store (written by the server)
    logs/server.log           the server's stdout and stderr
    run/server.pid            the server's pid
    nodes/<node>/agent.log    a node agent's stdout and stderr
    nodes/<node>/agent.pid    a node agent's pid

`ensure` creates what is missing and keeps what is there: re-running it keeps the CA, the token
and the port, so kubeconfigs handed out before stay valid.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import ipaddress
import json
import os
import random
import secrets
import socket
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from podnet.api import lbipam
from podnet.api.names import is_dns1123_label
from podnet.cluster import addons
from podnet.lab import topology

ENV_ROOT = "PODNET_STATE_ROOT"
ENV_NAME = "PODNET_CLUSTER"
DEFAULT_ROOT = Path("/var/lib/podnet")
DEFAULT_NAME = "podnet"
NAME_MAX = 20  # cluster names prefix kernel object names (interfaces, nft tables) later
DEFAULT_PORT = 6443
DEFAULT_BIND = "127.0.0.1"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
DEFAULT_NODE_CIDR_MASK = 24
CNI_PLUGINS = ("podnet", "ptp")  # podnet-cni, or Debian's ptp + host-local in its place
DEFAULT_CNI = "podnet"


class StateError(Exception):
    """The cluster's state is missing, unreadable or asked for with a bad name."""


def name_problems(name: str) -> list[str]:
    """Why `name` cannot name a cluster: empty when it can."""
    errs = [] if len(name) <= NAME_MAX else [f"must be no more than {NAME_MAX} characters"]
    return errs + [e for e in is_dns1123_label(name) if "must be no more than" not in e]


def resolve_name(name: str | None = None) -> str:
    """The cluster name from the argument, $PODNET_CLUSTER or the default; validated."""
    name = name or os.environ.get(ENV_NAME) or DEFAULT_NAME
    errs = name_problems(name)
    if errs:
        raise StateError(f"invalid cluster name {name!r}: {'; '.join(errs)}")
    return name


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The state root from the argument, $PODNET_STATE_ROOT or /var/lib/podnet."""
    if root is not None:
        return Path(root).absolute()
    env = os.environ.get(ENV_ROOT)
    return Path(env).absolute() if env else DEFAULT_ROOT


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ClusterConfig:
    """The contents of cluster.json."""

    name: str
    port: int
    bind: str = DEFAULT_BIND
    service_cidr: str = DEFAULT_SERVICE_CIDR
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR
    node_port_range: str = DEFAULT_NODE_PORT_RANGE
    created: str = ""
    nodes: int = 0  # 0: the control plane only, no lab
    backend: str = topology.DEFAULT_BACKEND
    lan_cidr: str = topology.DEFAULT_LAN_CIDR
    cni: str = DEFAULT_CNI
    node_cidr_mask: int = DEFAULT_NODE_CIDR_MASK  # each node's podCIDR: a /mask of cluster_cidr
    lb_pool: str = ""  # LoadBalancer addresses (lbipam.parse_pool); "": default_lb_pool(LAN)
    dns: bool = False  # whether `up` runs the cluster DNS (podnet.cluster.addons) on the nodes
    dns_upstreams: tuple[str, ...] = ()  # addons.parse_upstream's; (): the node's resolv.conf
    dns_pod_records: str = addons.DEFAULT_POD_RECORDS  # one of addons.POD_RECORDS

    @property
    def cluster_dns(self) -> str:
        """The cluster DNS's ClusterIP (the service CIDR's 10th address), which ClusterFirst
        pods get as their nameserver."""
        return addons.dns_service_ip(self.service_cidr)

    @property
    def cluster_domain(self) -> str:
        return addons.CLUSTER_DOMAIN

    @property
    def server_url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"https://{host}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        out = {k: d[k] for k in ("name", "bind", "port", "service_cidr", "cluster_cidr",
                                 "node_port_range", "created", "nodes", "backend",
                                 "lan_cidr", "cni", "node_cidr_mask")}
        if self.lb_pool:  # written when chosen; without it, the LAN's default pool
            out["lb_pool"] = self.lb_pool
        if self.dns:  # likewise: without it, no cluster DNS (as clusters made before it)
            out["dns"] = True
        if self.dns_upstreams:  # without them, the node's resolv.conf
            out["dns_upstreams"] = list(self.dns_upstreams)
        if self.dns_pod_records != addons.DEFAULT_POD_RECORDS:
            out["dns_pod_records"] = self.dns_pod_records
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClusterConfig:
        try:
            return cls(
                name=str(d["name"]),
                port=int(d["port"]),
                bind=str(d.get("bind", DEFAULT_BIND)),
                service_cidr=str(d.get("service_cidr", DEFAULT_SERVICE_CIDR)),
                cluster_cidr=str(d.get("cluster_cidr", DEFAULT_CLUSTER_CIDR)),
                node_port_range=str(d.get("node_port_range", DEFAULT_NODE_PORT_RANGE)),
                created=str(d.get("created", "")),
                nodes=int(d.get("nodes", 0)),
                backend=str(d.get("backend", topology.DEFAULT_BACKEND)),
                lan_cidr=str(d.get("lan_cidr", topology.DEFAULT_LAN_CIDR)),
                cni=str(d.get("cni", DEFAULT_CNI)),
                node_cidr_mask=int(d.get("node_cidr_mask", DEFAULT_NODE_CIDR_MASK)),
                lb_pool=str(d.get("lb_pool") or ""),
                dns=d.get("dns") is True,
                dns_upstreams=tuple(str(u) for u in d.get("dns_upstreams") or ()),
                dns_pod_records=str(d.get("dns_pod_records") or addons.DEFAULT_POD_RECORDS),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise StateError(f"bad cluster.json: {e}") from e

    @property
    def load_balancer_pool(self) -> str:
        """The LoadBalancer pool's addresses, as lbipam.parse_pool reads them."""
        return self.lb_pool or default_lb_pool(self.lan_cidr)

    def lab_plan(self, owner: str = "") -> topology.LabPlan:
        """The cluster's lab (no nodes: no lab is built). `owner`: the state directory."""
        try:
            return topology.plan(self.name, self.nodes, self.lan_cidr, self.backend, owner)
        except topology.TopologyError as e:
            raise StateError(f"bad cluster.json: {e}") from e


def default_lb_pool(lan_cidr: str) -> str:
    """The LoadBalancer pool of a cluster that chose none: LAN offsets 200..249."""
    return str(lbipam.offsets_pool(lan_cidr, *topology.LB_POOL_OFFSETS))


def parse_lb_pool(text: str) -> lbipam.Pool:
    """A LoadBalancer pool, or StateError naming it when it cannot be read."""
    try:
        return lbipam.parse_pool(text)
    except lbipam.PoolError as e:
        raise StateError(f"invalid LoadBalancer pool {text!r}: {e}") from None


def check_lb_pool(text: str, lan_cidr: str, nodes: int) -> str:
    """The pool `text` written canonically, or StateError naming it when it cannot serve the
    LAN `lan_cidr` of a cluster with `nodes` nodes: every address must be IPv4, inside the LAN,
    and none the external host's or a node's. (A LAN that is itself bad is reported by
    topology.problems; only the pool's syntax is checked then.)"""
    pool = parse_lb_pool(text)
    try:
        ipaddress.IPv4Network(lan_cidr)
    except ValueError:
        return str(pool)
    reserved = {topology.external_address(lan_cidr): "the external host's address"}
    for i in range(1, nodes + 1):
        reserved[topology.node_address(lan_cidr, i)] = f"node-{i}'s address"
    errs = lbipam.pool_problems(pool, lan_cidr, reserved)
    if errs:
        raise StateError(f"invalid LoadBalancer pool {text!r}: {'; '.join(errs)}")
    return str(pool)


@dataclass(frozen=True)
class ClusterState:
    """The paths of one cluster's state directory, and reading/writing its small files."""

    name: str
    dir: Path

    @classmethod
    def locate(cls, name: str | None = None,
               root: str | os.PathLike[str] | None = None) -> ClusterState:
        """The state of cluster `name` under `root` (both resolved from the environment)."""
        name = resolve_name(name)
        return cls(name, resolve_root(root) / name)

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str]) -> ClusterState:
        """The state in an existing directory (what `podnet server --state-dir` gets)."""
        p = Path(path).absolute()
        return cls(p.name, p)

    # -- paths -------------------------------------------------------------------------------

    @property
    def cluster_json(self) -> Path:
        return self.dir / "cluster.json"

    @property
    def api_socket(self) -> Path:
        """The API server's unix socket (plain HTTP, the same bearer token): how processes in
        pods, whose network namespace cannot reach the host's loopback, reach the API."""
        return self.dir / "api.sock"

    @property
    def pki_dir(self) -> Path:
        return self.dir / "pki"

    @property
    def ca_crt(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.pki_dir / "ca.key"

    @property
    def server_crt(self) -> Path:
        return self.pki_dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.pki_dir / "server.key"

    @property
    def token_path(self) -> Path:
        return self.dir / "token"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def store_db(self) -> Path:
        return self.dir / "store.db"

    @property
    def logs_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def server_log(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    @property
    def server_pid(self) -> Path:
        return self.run_dir / "server.pid"

    @property
    def lock_path(self) -> Path:
        return self.dir / ".lock"

    @property
    def nodes_dir(self) -> Path:
        return self.dir / "nodes"

    def node_dir(self, node: str) -> Path:
        return self.nodes_dir / node

    def agent_log(self, node: str) -> Path:
        return self.node_dir(node) / "agent.log"

    def agent_pid(self, node: str) -> Path:
        return self.node_dir(node) / "agent.pid"

    # -- files -------------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.cluster_json.is_file()

    def load(self) -> ClusterConfig:
        """cluster.json, or StateError when it is missing or unreadable."""
        try:
            data = json.loads(self.cluster_json.read_text())
        except FileNotFoundError:
            raise StateError(f'cluster "{self.name}" does not exist ({self.dir})') from None
        except (OSError, ValueError) as e:
            raise StateError(f"cannot read {self.cluster_json}: {e}") from e
        if not isinstance(data, dict):
            raise StateError(f"bad cluster.json: {self.cluster_json}")
        return ClusterConfig.from_dict(data)

    def save(self, config: ClusterConfig) -> None:
        write_atomic(self.cluster_json,
                     (json.dumps(config.to_dict(), indent=2) + "\n").encode(), 0o644)

    def read_token(self) -> str:
        try:
            return self.token_path.read_text().strip()
        except OSError as e:
            raise StateError(f"cannot read the token: {e}") from e

    def read_pid(self) -> int | None:
        """The pid in run/server.pid, or None when there is none (or it is garbage)."""
        return read_pid_file(self.server_pid)

    def write_pid(self, pid: int) -> None:
        write_pid_file(self.server_pid, pid)

    def clear_pid(self) -> None:
        clear_pid_file(self.server_pid)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on this cluster (up/down never run at the same time)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def read_pid_file(path: Path) -> int | None:
    """The pid in a pid file, or None when there is none (or it is garbage)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def write_pid_file(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, f"{pid}\n".encode(), 0o644)


def clear_pid_file(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` through a temporary file and a rename; the file never exists
    with other permissions than `mode`."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


# -- ports ------------------------------------------------------------------------------------


def port_free(bind: str, port: int) -> bool:
    """True when a listener could bind `bind:port` now."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((bind, port))
        except OSError:
            return False
    return True


def claimed_ports(root: Path) -> set[int]:
    """Ports recorded by the clusters under `root` (running or not)."""
    out: set[int] = set()
    if not root.is_dir():
        return out
    for cj in root.glob("*/cluster.json"):
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            out.add(int(json.loads(cj.read_text())["port"]))
    return out


def _local_port_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def ephemeral_port(bind: str) -> int:
    """A free port below the kernel's range for outgoing connections' source ports: a port in
    that range, once its server stops (e.g. killed and restarted), can be taken by any client
    connection in between, and the restarted server could not bind it again."""
    lo, _ = _local_port_range()
    floor = 10000 if lo > 11000 else 1024
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(floor, lo)
        if port_free(bind, port):
            return port
    raise StateError(f"no free TCP port on {bind} below {lo}")


def choose_port(bind: str, taken: Iterable[int] = (), preferred: int = DEFAULT_PORT) -> int:
    """`preferred` when it is free and not taken by another cluster, else a free port the
    kernel picks."""
    taken = set(taken)
    if preferred not in taken and port_free(bind, preferred):
        return preferred
    for _ in range(50):
        port = ephemeral_port(bind)
        if port not in taken:
            return port
    raise StateError(f"no free TCP port on {bind}")


# -- kubeconfig -------------------------------------------------------------------------------


def kubeconfig_yaml(name: str, server_url: str, ca_pem: bytes, token: str) -> str:
    """A kubeconfig with one cluster, one user and one context, usable by kubectl as is."""
    import yaml  # here, not at the top: most commands never write a kubeconfig

    user = f"{name}-admin"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "server": server_url,
            "certificate-authority-data": base64.b64encode(ca_pem).decode(),
        }}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


# -- ensure -----------------------------------------------------------------------------------


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class LabSettings:
    """What `up` asks of the lab, its nodes and their cluster DNS; None: as the cluster has it
    (a new cluster: the default, which is no nodes at all here; the CLI asks for
    topology.DEFAULT_NODES)."""

    nodes: int | None = None
    backend: str | None = None
    lan_cidr: str | None = None
    cni: str | None = None
    node_cidr_mask: int | None = None
    lb_pool: str | None = None  # LoadBalancer pool, as lbipam.parse_pool reads it
    dns: bool | None = None  # run the cluster DNS (a new cluster: not unless asked)
    dns_upstreams: tuple[str, ...] | None = None  # the cluster DNS's upstreams (IP[:PORT])
    dns_pod_records: str | None = None  # "insecure" or "disabled"

    def changes(self, config: ClusterConfig) -> list[str]:
        """How these settings differ from an existing cluster's, worded for an error."""
        out = []
        if self.nodes is not None and self.nodes != config.nodes:
            out.append(f"{config.nodes} nodes")
        if self.backend is not None and self.backend != config.backend:
            out.append(f"backend {config.backend}")
        if self.lan_cidr is not None and self.lan_cidr != config.lan_cidr:
            out.append(f"LAN {config.lan_cidr}")
        if self.cni is not None and self.cni != config.cni:
            out.append(f"CNI {config.cni}")
        if self.node_cidr_mask is not None and self.node_cidr_mask != config.node_cidr_mask:
            out.append(f"/{config.node_cidr_mask} pod CIDRs")
        if self.lb_pool is not None and (parse_lb_pool(self.lb_pool)
                                         != parse_lb_pool(config.load_balancer_pool)):
            out.append(f"LoadBalancer pool {config.load_balancer_pool}")
        if self.dns is not None and self.dns != config.dns:
            out.append("the cluster DNS " + ("on" if config.dns else "off"))
        if self.dns_upstreams is not None and (parse_dns_upstreams(self.dns_upstreams)
                                               != config.dns_upstreams):
            out.append("DNS upstreams " + (" ".join(config.dns_upstreams)
                                           or "from the node's resolv.conf"))
        if self.dns_pod_records is not None and self.dns_pod_records != config.dns_pod_records:
            out.append(f"DNS pod records {config.dns_pod_records}")
        return out


def parse_dns_upstreams(texts: Iterable[str]) -> tuple[str, ...]:
    """The cluster DNS's upstreams written canonically (duplicates dropped), or StateError
    naming the first that cannot be one."""
    out: list[str] = []
    for text in texts:
        try:
            upstream = addons.parse_upstream(text)
        except addons.AddonError as e:
            raise StateError(str(e)) from None
        if upstream not in out:
            out.append(upstream)
    return tuple(out)


def _ensure_config(state: ClusterState, now: dt.datetime, port: int | None,
                   lab: LabSettings) -> ClusterConfig:
    if state.cluster_json.exists():
        config = state.load()
        if config.name != state.name:
            raise StateError(f"{state.cluster_json} belongs to cluster {config.name!r}")
        if port and port != config.port:
            raise StateError(f'cluster "{state.name}" exists with port {config.port}; remove it '
                             f"(podnet down) to change the port")
        changes = lab.changes(config)
        if changes:
            raise StateError(f'cluster "{state.name}" exists with {", ".join(changes)}; remove '
                             f"it (podnet down) to change that")
        return config
    config = ClusterConfig(name=state.name, port=port or 0, created=rfc3339(now),
                           nodes=0 if lab.nodes is None else lab.nodes,
                           backend=lab.backend or topology.DEFAULT_BACKEND,
                           lan_cidr=lab.lan_cidr or topology.DEFAULT_LAN_CIDR,
                           cni=lab.cni or DEFAULT_CNI,
                           node_cidr_mask=lab.node_cidr_mask or DEFAULT_NODE_CIDR_MASK)
    errs = topology.problems(config.nodes, config.lan_cidr, config.backend)
    cluster_prefix = int(config.cluster_cidr.partition("/")[2] or 0)
    if not cluster_prefix <= config.node_cidr_mask <= 30:
        errs.append(f"node_cidr_mask must be between /{cluster_prefix} (the cluster CIDR "
                    f"{config.cluster_cidr}) and /30, not /{config.node_cidr_mask}")
    if config.cni not in CNI_PLUGINS:
        errs.append(f"cni must be one of {', '.join(CNI_PLUGINS)}, not {config.cni!r}")
    if lab.lb_pool is not None:
        try:
            config = replace(config, lb_pool=check_lb_pool(lab.lb_pool, config.lan_cidr,
                                                           config.nodes))
        except StateError as e:
            errs.append(str(e))
    config = replace(config, dns=bool(lab.dns))
    if lab.dns_upstreams is not None:
        try:
            config = replace(config, dns_upstreams=parse_dns_upstreams(lab.dns_upstreams))
        except StateError as e:
            errs.append(str(e))
    if lab.dns_pod_records is not None:
        if lab.dns_pod_records in addons.POD_RECORDS:
            config = replace(config, dns_pod_records=lab.dns_pod_records)
        else:
            errs.append(f"DNS pod records must be one of {', '.join(addons.POD_RECORDS)}, not "
                        f"{lab.dns_pod_records!r}")
    if errs:
        raise StateError("; ".join(errs))
    if not port:
        root = state.dir.parent
        port = choose_port(DEFAULT_BIND, claimed_ports(root) if root.is_dir() else ())
        config = replace(config, port=port)
    state.save(config)
    return config


def _ensure_pki(state: ClusterState, config: ClusterConfig, extra_ips: Iterable[str],
                now: dt.datetime) -> None:
    from podnet.cluster import pki  # here, not at the top: cryptography is slow to import

    state.pki_dir.mkdir(mode=0o700, exist_ok=True)
    ca_crt, ca_key = _read(state.ca_crt), _read(state.ca_key)
    ca = pki.CertKey(ca_crt, ca_key) if ca_crt and ca_key else None
    if ca is None or not pki.is_ca_pair(ca):
        ca = pki.make_ca(f"{state.name}-ca", now)
        write_atomic(state.ca_key, ca.key_pem, 0o600)
        write_atomic(state.ca_crt, ca.cert_pem, 0o644)
    dns = pki.SERVER_DNS_NAMES
    ips = pki.server_ips(config.service_cidr, extra_ips)
    srv_crt, srv_key = _read(state.server_crt), _read(state.server_key)
    if srv_crt and srv_key and pki.server_cert_ok(
            pki.CertKey(srv_crt, srv_key), ca.cert_pem, dns_names=dns, ips=ips, now=now):
        return
    server = pki.make_server_cert(ca, common_name=f"{state.name}-apiserver", dns_names=dns,
                                  ips=ips, now=now)
    write_atomic(state.server_key, server.key_pem, 0o600)
    write_atomic(state.server_crt, server.cert_pem, 0o644)


def _ensure_token(state: ClusterState) -> str:
    token = _read(state.token_path)
    if token and token.strip():
        return token.decode().strip()
    new = secrets.token_hex(32)
    write_atomic(state.token_path, new.encode(), 0o600)
    return new


def _ensure_kubeconfig(state: ClusterState, config: ClusterConfig, token: str) -> None:
    text = kubeconfig_yaml(state.name, config.server_url, state.ca_crt.read_bytes(), token)
    if _read(state.kubeconfig) != text.encode():
        write_atomic(state.kubeconfig, text.encode(), 0o600)


def ensure(
    name: str | None = None,
    root: str | os.PathLike[str] | None = None,
    *,
    port: int | None = None,
    extra_ips: Iterable[str] = (),
    now: dt.datetime | None = None,
    lab: LabSettings | None = None,
) -> ClusterState:
    """Create whatever is missing of cluster `name`'s state; keep what is there. The API port
    is `port`, or else 6443 if free, or else one the kernel finds free; it never changes, and
    neither do the lab's settings (`lab`; a new cluster without them has no nodes)."""
    state = ClusterState.locate(name, root)
    now = now or utc_now()
    try:
        state.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = _ensure_config(state, now, port, lab or LabSettings())
        _ensure_pki(state, config, extra_ips, now)
        token = _ensure_token(state)
        _ensure_kubeconfig(state, config, token)
        state.logs_dir.mkdir(exist_ok=True)
        state.run_dir.mkdir(exist_ok=True)
    except PermissionError as e:
        raise StateError(f"{e.filename}: permission denied (podnet needs root, or set "
                         f"{ENV_ROOT} to a directory you own)") from e
    return state
