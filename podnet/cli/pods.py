"""`podnet logs` and `podnet exec POD`: reach into a pod on this machine.

The pod is found through the API (its uid and node); its logs and namespaces are then read on
disk, where the node's agent keeps them (podnet.runtime's layout).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from podnet import runtime
from podnet.api.resources import lookup
from podnet.client.http import ApiError, Client
from podnet.cluster.state import ClusterState


class PodError(Exception):
    """Worded for the user, as kubectl words it."""


def find_pod(state: ClusterState, namespace: str, name: str) -> dict[str, Any]:
    pods = lookup("pods")
    assert pods is not None
    with Client.from_state(state) as client:
        try:
            return client.get(pods, namespace, name)
        except ApiError as e:
            raise PodError(e.kubectl_message()) from e


def pick_container(pod: dict[str, Any], container: str | None) -> str:
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    inits = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
    if container is None:
        if len(names) > 1:
            print(f'Defaulted container "{names[0]}" out of: {", ".join(names)}',
                  file=sys.stderr)
        return str(names[0])
    if container not in names + inits:
        raise PodError(f"error: container {container} is not valid for pod "
                       f"{pod['metadata']['name']}")
    return container


def _where(state: ClusterState, pod: dict[str, Any]) -> tuple[Path, str]:
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise PodError(f"error: pod {pod['metadata']['name']} is not scheduled to a node yet")
    return state.node_dir(node), pod["metadata"]["uid"]


def logs(state: ClusterState, namespace: str, name: str, container: str | None, *,
         follow: bool = False, tail: int = -1) -> int:
    pod = find_pod(state, namespace, name)
    c = pick_container(pod, container)
    node_dir, uid = _where(state, pod)
    path = runtime.log_path(node_dir, uid, c)
    if not path.exists():
        raise PodError(f'Error from server (BadRequest): container "{c}" in pod "{name}" is '
                       "waiting to start: ContainerCreating")
    with path.open("rb") as f:
        data = f.read()
        if tail >= 0:
            data = b"".join(data.splitlines(keepends=True)[-tail:]) if tail else b""
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        while follow:
            chunk = f.read()
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            else:
                time.sleep(0.2)
    return 0


def exec_in_pod(state: ClusterState, namespace: str, name: str, container: str | None,
                argv: list[str]) -> int:
    pod = find_pod(state, namespace, name)
    c = pick_container(pod, container)
    node_dir, uid = _where(state, pod)
    try:
        prefix = runtime.exec_argv(node_dir, uid, c)
    except Exception as e:
        raise PodError(f"error: unable to exec into pod {name}: {e}") from e
    sys.stdout.flush()
    sys.stderr.flush()
    rc = subprocess.run([*prefix, *argv]).returncode
    return rc if rc >= 0 else 128 - rc
