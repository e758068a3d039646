"""What the integration tests share to drive a lab: waiting, reading pods and endpoints, the
objects they create, and running the service client (tools/client.py) inside a namespace."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLIENT = Path(__file__).parent / "tools" / "client.py"
PORT = 8080  # the echo pods' port
SVC_PORT = 80  # the Services' port


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 60.0, every: float = 0.2) -> Any:
    """fn()'s first truthy value, polling; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def pods_by_name(lab: Any, namespace: str = "default") -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p
            for p in lab.client.list(lab.res("Pod"), namespace)["items"]}


def with_ips(lab: Any, wanted: list[str]) -> dict[str, dict[str, Any]] | None:
    """The pods by name once every wanted one has an IP, else None (for wait_for)."""
    pods = pods_by_name(lab)
    ok = all(pods.get(n, {}).get("status", {}).get("podIP") for n in wanted)
    return pods if ok else None


def ready_endpoints(lab: Any, svc: str, namespace: str = "default") -> set[str]:
    slices = lab.client.list(lab.res("EndpointSlice"), namespace,
                             label_selector=f"kubernetes.io/service-name={svc}")["items"]
    return {a for s in slices for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready") for a in e["addresses"]}


def echo_pod(name: str, node: str, labels: dict[str, str], *, udp: bool = False,
             grace: int | None = None, **container: Any) -> dict[str, Any]:
    """An echo pod on `node` (HTTP on PORT, or UDP echo on 5353 with `udp`)."""
    ports: list[dict[str, Any]] = ([{"containerPort": 5353, "protocol": "UDP"}] if udp
                                   else [{"containerPort": PORT}])
    spec: dict[str, Any] = {"nodeName": node, "containers": [
        {"name": "echo", "image": "podnet/echo", "ports": ports, **container}]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": spec}


def service(name: str, selector: dict[str, str], **spec: Any) -> dict[str, Any]:
    """A Service on SVC_PORT/TCP to the echo pods' PORT."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": selector,
                     "ports": [{"port": SVC_PORT, "targetPort": PORT, "protocol": "TCP"}],
                     **spec}}


def client_argv(netns: str, *args: Any) -> list[str]:
    return ["ip", "netns", "exec", netns, sys.executable, "-I", "-S", str(CLIENT),
            *map(str, args)]


def run_in(netns: str, *args: Any) -> Any:
    """Run the service client in `netns` and return its JSON."""
    out = subprocess.run(client_argv(netns, *args), capture_output=True, text=True,
                         timeout=180, check=True)
    return json.loads(out.stdout)


def nft_table(lab: Any, node: str) -> dict[str, Any]:
    """A node's proxy table as nft's JSON (tests may read it; the proxy doesn't)."""
    from podnet.lab import names

    out = subprocess.run(["ip", "netns", "exec", names.node_netns(lab.name, node), "nft", "-j",
                          "list", "table", "ip", f"podnet-{lab.name}"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)
