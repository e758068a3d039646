"""Shared test set-up.

- Tests under tests/integration/ are marked `integration` automatically; they are skipped, with
  the reason, when not running as root. `pytest tests/unit` never needs root.
- The `cluster` fixture brings a fresh cluster up for one test (unique name, state root under
  /tmp) and always tears it down afterwards, checking that no server process is left behind.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from podnet.api.resources import Resource, lookup
from podnet.client.http import Client
from podnet.cluster import lifecycle
from podnet.cluster.state import ClusterState, ephemeral_port
from podnet.kernel import netns as kernel_netns
from podnet.lab import names as lab_names

REPO = Path(__file__).resolve().parent.parent
KUBECTL = REPO / ".venv" / "bin" / "kubectl"
NOT_ROOT_REASON = ("integration tests need root (they start servers and, later, create network "
                   "namespaces and nftables rules): run them as root, e.g. `sudo make test`")


def is_root() -> bool:
    return os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    integration_dir = REPO / "tests" / "integration"
    skip = pytest.mark.skip(reason=NOT_ROOT_REASON)
    for item in items:
        if integration_dir in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)
        if not is_root() and "integration" in item.keywords:
            item.add_marker(skip)


@dataclass
class TestCluster:
    """A running cluster for one test."""

    __test__ = False  # not a test class, despite its name

    state: ClusterState
    client: Client
    root: Path

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def kubeconfig(self) -> Path:
        return self.state.kubeconfig

    @property
    def port(self) -> int:
        return self.state.load().port

    def res(self, kind: str) -> Resource:
        r = lookup(kind)
        assert r is not None, f"unknown kind {kind}"
        return r

    def revision(self) -> int:
        """The store's current revision (the resourceVersion of a fresh list)."""
        ns = self.client.list(self.res("namespaces"), params={"limit": 1})
        return int(ns["metadata"]["resourceVersion"])

    def settled_revision(self, quiet: float = 0.5, timeout: float = 10.0) -> int:
        """The store's revision once the controllers have stopped writing (no change for
        `quiet` seconds): what a test compares against to show a request changed nothing."""
        import time

        rev = self.revision()
        deadline = time.monotonic() + timeout
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.revision()
            if now != rev:
                rev, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= quiet:
                break
        return rev

    def kubectl_cmd(self) -> list[str]:
        return [str(KUBECTL), "--kubeconfig", str(self.kubeconfig)]

    def kubectl(self, *args: str, input: str | None = None, check: bool = False,
                timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster."""
        return subprocess.run([*self.kubectl_cmd(), *args], input=input, text=True,
                              capture_output=True, check=check, timeout=timeout)

    def podnet_cmd(self) -> list[str]:
        return [sys.executable, "-m", "podnet.cli.main", "--name", self.name]

    def podnet(self, *args: str, input: str | None = None, check: bool = False,
               timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run the podnet CLI (as a new process) against this cluster."""
        env = {**os.environ, "PODNET_STATE_ROOT": str(self.root)}
        return subprocess.run([*self.podnet_cmd(), *args], input=input, text=True,
                              capture_output=True, check=check, timeout=timeout, env=env,
                              cwd=REPO)


def leftover_servers(state: ClusterState) -> list[int]:
    return lifecycle.find_servers(state)


@pytest.fixture
def cluster_root() -> Iterator[Path]:
    """A fresh state root under /tmp, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="podnet-test-", dir="/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cluster(cluster_root: Path) -> Iterator[TestCluster]:
    """A cluster of its own for one test; torn down afterwards even when the test failed."""
    if not is_root():
        pytest.skip(NOT_ROOT_REASON)
    name = "t" + secrets.token_hex(4)
    state = ClusterState.locate(name, cluster_root)
    quiet: Any = io.StringIO()
    client: Client | None = None
    try:
        # A port of the kernel's choosing, not 6443: clusters of concurrent test runs (in
        # other state roots) must not race for the same port.
        lifecycle.up(name, cluster_root, wait=30.0, port=ephemeral_port("127.0.0.1"),
                     out=quiet)
        client = Client.from_state(state)
        yield TestCluster(state, client, cluster_root)
    finally:
        if client is not None:
            client.close()
        lifecycle.down(name, cluster_root, out=quiet)
        leaked = leftover_servers(state)
        assert not leaked, f"server processes left behind: {leaked}"
        assert not state.dir.exists(), f"state left behind: {state.dir}"


@pytest.fixture
def make_lab(cluster_root: Path) -> Iterator[Callable[..., TestCluster]]:
    """Bring up clusters with nodes and agents: `make_lab(nodes=3, backend=..., cni=...)`.
    Every cluster made is torn down afterwards, checking that no namespace or process of it
    is left behind."""
    if not is_root():
        pytest.skip(NOT_ROOT_REASON)
    made: list[TestCluster] = []
    quiet: Any = io.StringIO()
    host_before = host_network_state()

    def make(nodes: int = 3, backend: str = "host-gw", cni: str = "podnet",
             **settings: Any) -> TestCluster:
        name = "n" + secrets.token_hex(4)
        made.append(TestCluster(ClusterState.locate(name, cluster_root), None,  # type: ignore[arg-type]
                                cluster_root))
        lifecycle.up(name, cluster_root, wait=60.0, port=ephemeral_port("127.0.0.1"),
                     nodes=nodes, backend=backend, cni=cni, out=quiet, **settings)
        made[-1].client = Client.from_state(made[-1].state)
        return made[-1]

    try:
        yield make
    finally:
        for c in made:
            if c.client is not None:
                c.client.close()
            lifecycle.down(c.name, cluster_root, out=quiet)
        for c in made:
            left = [n for n in kernel_netns.names() if lab_names.owns_netns(c.name, n)]
            assert not left, f"namespaces left behind: {left}"
            assert not leftover_servers(c.state), "server processes left behind"
        assert host_network_state() == host_before, "the host's own namespace changed"


@contextlib.contextmanager
def module_lab(root: Path, prefix: str, *,
               leftovers: Callable[[ClusterState], list[str]] | None = None,
               **settings: Any) -> Iterator[TestCluster]:
    """A lab kept for a whole module (make_lab is per test): `lifecycle.up(**settings)`, then
    always down, checking that nothing of it is left behind (namespaces, servers, whatever
    `leftovers` finds) and that the host's own namespace did not change."""
    if not is_root():
        pytest.skip(NOT_ROOT_REASON)
    quiet: Any = io.StringIO()
    host_before = host_network_state()
    name = prefix + secrets.token_hex(4)
    lab = TestCluster(ClusterState.locate(name, root), None, root)  # type: ignore[arg-type]
    try:
        lifecycle.up(name, root, wait=90.0, port=ephemeral_port("127.0.0.1"), out=quiet,
                     **settings)
        lab.client = Client.from_state(lab.state)
        yield lab
    finally:
        if lab.client is not None:
            lab.client.close()
        lifecycle.down(name, root, out=quiet)
        left = [n for n in kernel_netns.names() if lab_names.owns_netns(name, n)]
        assert not left, f"namespaces left behind: {left}"
        assert not leftover_servers(lab.state), "server processes left behind"
        if leftovers is not None:
            extra = leftovers(lab.state)
            assert not extra, f"left behind: {extra}"
        assert host_network_state() == host_before, "the host's own namespace changed"


def host_network_state() -> dict[str, Any]:
    """The host namespace's links, addresses, routes and nft ruleset: podnet must never
    change them (it only creates namespaces and listens on loopback)."""
    import json

    def ip(*args: str) -> Any:
        return json.loads(subprocess.run(["ip", "-j", *args], capture_output=True, text=True,
                                         check=True).stdout or "[]")

    links = sorted((i["ifname"], i.get("mtu"), i.get("address"), tuple(i.get("flags", [])))
                   for i in ip("link", "show"))
    addrs = sorted((i["ifname"], a.get("local"), a.get("prefixlen"))
                   for i in ip("addr", "show") for a in i.get("addr_info", []))
    routes = sorted(json.dumps(r, sort_keys=True) for r in ip("route", "show", "table", "all"))
    nft = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True)
    return {"links": links, "addrs": addrs, "routes": routes,
            "nft": nft.stdout if nft.returncode == 0 else None}
