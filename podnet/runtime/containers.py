"""Containers: their command line and environment, and the sh shim that runs each one (shell).

See podnet.runtime for the process model. A container run is started with `spawn()`, which
returns the shim's pid and start time; the shim writes `<name>.pid` (the container's process
group) and, when it is over, `<name>.exit`. `read_exit()` reads the result, `signal_group()`
signals the container. The command line and environment follow kubelet: `command` + `args`,
`env` with `$(VAR)` references expanded, the downward-API `fieldRef`s, and `workingDir`.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from podnet.runtime.sandbox import NSENTER, SH, SYSTEM_PATH, _which

SETSID = _which("setsid")
DEFAULT_PATH = SYSTEM_PATH

# $1 pod dir, $2 container name, $3 pause pid, $4 working directory, then the command. The
# variables are named so that they do not clash with the container's environment (which the
# shim carries and passes on).
SHIM_SCRIPT = f"""_pn_d=$1 _pn_n=$2 _pn_p=$3 _pn_w=$4
shift 4
{SETSID} {NSENTER} -t "$_pn_p" --net --uts --mount "--wd=$_pn_w" -- "$@" \
</dev/null >>"$_pn_d/$_pn_n.log" 2>&1 &
_pn_c=$!
echo "$_pn_c" >"$_pn_d/$_pn_n.pid"
wait "$_pn_c"
_pn_rc=$?
kill -KILL -"$_pn_c" 2>/dev/null
echo "$_pn_rc" >"$_pn_d/$_pn_n.exit"
"""


# -- command and environment --------------------------------------------------------------------

def expand(text: str, env: Mapping[str, str]) -> str:
    """kubelet's $(VAR) expansion: `$(NAME)` becomes NAME's value when it is defined (else it
    stays as written), `$$` is a literal `$`."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "$" or i + 1 >= len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append("$(")
                i += 2
            else:
                name = text[i + 2:end]
                out.append(env.get(name, f"$({name})"))
                i = end + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def _meta(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = pod.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _format_map(m: object) -> str:
    """The downward API's rendering of labels or annotations: key="value" lines, sorted."""
    if not isinstance(m, Mapping):
        return ""
    return "\n".join(f'{k}="{v}"' for k, v in sorted(m.items()))


def field_ref(pod: Mapping[str, Any], path: str, *, pod_ips: Sequence[str],
              host_ip: str) -> str | None:
    """The value of a downward-API fieldRef, or None when podnet does not know it."""
    meta = _meta(pod)
    raw_spec = pod.get("spec")
    spec: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {}
    simple: dict[str, object] = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": host_ip, "status.hostIPs": host_ip,
        "status.podIP": pod_ips[0] if pod_ips else "", "status.podIPs": ",".join(pod_ips),
        "metadata.labels": _format_map(meta.get("labels")),
        "metadata.annotations": _format_map(meta.get("annotations")),
    }
    if path in simple:
        value = simple[path]
        return "" if value is None else str(value)
    for prefix, key in (("metadata.labels['", "labels"), ("metadata.annotations['", "annotations")):
        if path.startswith(prefix) and path.endswith("']"):
            values = meta.get(key)
            name = path[len(prefix):-2]
            return str(values.get(name, "")) if isinstance(values, Mapping) else ""
    return None


def container_env(pod: Mapping[str, Any], container: Mapping[str, Any], *, hostname: str,
                  pod_ips: Sequence[str], host_ip: str,
                  extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a container starts with: PATH, HOSTNAME and HOME as a runtime sets
    them, `extra` (e.g. service variables), then the container's `env` in order, each value
    expanded against what came before. Secret and ConfigMap references are not supported
    (the variable is left out)."""
    env: dict[str, str] = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname, "HOME": "/root"}
    env.update(extra or {})
    for item in container.get("env") or []:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        name = item["name"]
        if "value" in item or "valueFrom" not in item:
            env[name] = expand(str(item.get("value") or ""), env)
            continue
        source = item.get("valueFrom") or {}
        ref = source.get("fieldRef") if isinstance(source, Mapping) else None
        if isinstance(ref, Mapping):
            value = field_ref(pod, str(ref.get("fieldPath", "")), pod_ips=pod_ips,
                              host_ip=host_ip)
            if value is not None:
                env[name] = value
    return env


def echo_command(pod: Mapping[str, Any], container: Mapping[str, Any], *, echo_path: Path,
                 node: str, pod_ip: str) -> list[str]:
    """The echo server for a container without a command: each declared TCP and UDP port."""
    meta = _meta(pod)
    argv = [sys.executable, "-I", "-S", str(echo_path), "--pod", str(meta.get("name", "")),
            "--namespace", str(meta.get("namespace", "")), "--node", node, "--pod-ip", pod_ip]
    for port in container.get("ports") or []:
        if not isinstance(port, Mapping) or not isinstance(port.get("containerPort"), int):
            continue
        proto = str(port.get("protocol") or "TCP")
        if proto in ("TCP", "UDP"):
            argv += [f"--{proto.lower()}", str(port["containerPort"])]
    return argv


def command_line(pod: Mapping[str, Any], container: Mapping[str, Any], env: Mapping[str, str], *,
                 echo_path: Path, node: str, pod_ip: str) -> list[str]:
    """command + args, expanded; the echo server when there is no command."""
    command = [str(a) for a in container.get("command") or []]
    if not command:
        return echo_command(pod, container, echo_path=echo_path, node=node, pod_ip=pod_ip)
    args = [str(a) for a in container.get("args") or []]
    return [expand(a, env) for a in (*command, *args)]


def container_id(uid: str, name: str, run: int) -> str:
    return "podnet://" + hashlib.sha256(f"{uid}/{name}/{run}".encode()).hexdigest()


# -- the shim -----------------------------------------------------------------------------------

def spawn(pod_dir: Path, name: str, pause_pid: int, argv: Sequence[str], env: Mapping[str, str],
          workdir: str) -> int:
    """Start a container run under its shim, in a session of its own; returns the shim's pid.
    Clears the previous run's pid and exit files first."""
    for suffix in (".pid", ".exit"):
        try:
            os.unlink(pod_dir / f"{name}{suffix}")
        except FileNotFoundError:
            pass
    return os.posix_spawn(
        SH, [SH, "-c", SHIM_SCRIPT, "podnet-shim", str(pod_dir), name, str(pause_pid),
             workdir or "/", *argv],
        dict(env),
        file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                      (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                      (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)],
        setsid=True)


def read_pgid(pod_dir: Path, name: str) -> int | None:
    try:
        pgid = int((pod_dir / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pgid if pgid > 1 else None


def read_exit(pod_dir: Path, name: str) -> tuple[int, float] | None:
    """(exit status, finish time) of the run that just ended, or None when the shim did not
    get to write it (it was killed)."""
    path = pod_dir / f"{name}.exit"
    try:
        text = path.read_text().strip()
        finished = path.stat().st_mtime
        return int(text), finished
    except (OSError, ValueError):
        return None


def signal_group(pgid: int | None, sig: signal.Signals) -> bool:
    """Signal a container's process group; False when there is none (yet, or any more)."""
    if not pgid:
        return False
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
