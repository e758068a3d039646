"""Container lifecycle hooks as kubelet runs them (pure).

A container may have two hooks under `lifecycle`, each one handler: `exec`, `httpGet` or
`sleep` (`tcpSocket` is accepted by the API for old objects, but kubelet cannot run it, so the
hook fails).

- **postStart** runs right after the container's process started. Until it has finished the
  container does not count as started: its status stays waiting, its probes do not run, and no
  other container of the pod starts (kubelet starts them one after the other and waits for each
  hook). A hook that fails gets a Warning `FailedPostStartHook` event and the container is
  killed (a Killing event whose message is `FailedPostStartHook`); the restartPolicy decides
  what follows. kubelet puts no time limit on it.
- **preStop** runs when a running container is stopped (the pod is deleted, a probe failed,
  ...), before SIGTERM, if the grace period is above 0. Its time counts against the grace
  period: at the end of the grace period it is abandoned; a hook that fails gets a Warning
  `FailedPreStopHook` event. Then SIGTERM, and SIGKILL once what is left of the grace period
  (in whole seconds as kubelet counts, but at least kubelet's minimal 2 s window) is over.

The events carry no detail (kubelet keeps the handler's output out of events, so that secrets
do not leak); `failure_message()` is the detailed text for the agent's log. An httpGet hook
succeeds on any HTTP answer: kubelet does not look at the status code. An exec hook succeeds
when its command exits 0; its command is not `$(VAR)`-expanded (probes' commands are).

The shell that runs hooks is podnet.runtime.prober (`ProbeRunner.run_hook`); podnet.runtime.pods
decides when.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podnet.runtime import probes
from podnet.runtime.probes import Exec, HttpGet, ProbeError, Unsupported

POST_START = "postStart"
PRE_STOP = "preStop"
HOOKS = (POST_START, PRE_STOP)
TITLE = {POST_START: "PostStartHook", PRE_STOP: "PreStopHook"}

USER_AGENT = "kube-lifecycle/1.37"
MIN_STOP_WINDOW = 2.0  # kubelet's minimumGracePeriodInSeconds after a preStop hook

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Sleep:
    seconds: int


HookAction = HttpGet | Exec | Sleep | Unsupported


@dataclass(frozen=True)
class Hook:
    kind: str            # POST_START or PRE_STOP
    action: HookAction


def handler(container: Obj, kind: str) -> Obj | None:
    """The container's `lifecycle.<kind>` handler, or None when it has none."""
    lifecycle = container.get("lifecycle")
    if not isinstance(lifecycle, Mapping):
        return None
    spec = lifecycle.get(kind)
    return spec if isinstance(spec, Mapping) else None


def parse(container: Obj, kind: str, pod_ip: str) -> Hook | None:
    """The container's hook of `kind` as an action to perform, or None when it has none."""
    spec = handler(container, kind)
    if spec is None:
        return None
    return Hook(kind, _action(spec, container, pod_ip))


def _action(spec: Obj, container: Obj, pod_ip: str) -> HookAction:
    ex, http, sleep = spec.get("exec"), spec.get("httpGet"), spec.get("sleep")
    if isinstance(ex, Mapping):
        command = [str(a) for a in ex.get("command") or []]
        return Exec(tuple(command)) if command else Unsupported("exec hook has no command")
    if isinstance(http, Mapping):
        try:
            return probes.http_get_action(http, container, pod_ip, user_agent=USER_AGENT)
        except ProbeError as e:
            return Unsupported(str(e))
    if isinstance(sleep, Mapping):
        seconds = sleep.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            return Unsupported(f"invalid sleep seconds: {seconds!r}")
        return Sleep(seconds)
    return Unsupported("invalid handler: " + json.dumps(dict(spec), sort_keys=True,
                                                         default=str))


# -- words --------------------------------------------------------------------------------------

def failed_event(kind: str) -> tuple[str, str]:
    """(reason, message) of the Warning event for a hook that failed."""
    return f"Failed{TITLE[kind]}", f"{TITLE[kind]} failed"


POST_START_KILL_MESSAGE = "FailedPostStartHook"  # the Killing event's message


def failure_message(hook: Hook, container: str, pod_ref: str, error: str) -> str:
    """What the agent logs for a hook that failed (kubelet's wording per handler type)."""
    action = hook.action
    where = f"for Container {json.dumps(container)} in Pod {json.dumps(pod_ref)}"
    if isinstance(action, Exec):
        return (f"Exec lifecycle hook ({_go_list(action.command)}) {where} failed - error: "
                f"{error}")
    if isinstance(action, HttpGet):
        return f"HTTP lifecycle hook ({action.path}) {where} failed - error: {error}"
    if isinstance(action, Sleep):
        return f"Sleep lifecycle hook ({action.seconds}) {where} failed - error: {error}"
    return f"Cannot run handler: {error}"


def _go_list(items: tuple[str, ...]) -> str:
    return "[" + " ".join(items) + "]"


# -- time ---------------------------------------------------------------------------------------

def runs_pre_stop(grace: float) -> bool:
    """kubelet runs a preStop hook only when the grace period leaves time for it."""
    return grace > 0


def hook_deadline(began: float, grace: float) -> float:
    """When a preStop hook that began with the stop at `began` is abandoned."""
    return began + grace


def kill_at(began: float, grace: float, hook_end: float | None) -> float:
    """When SIGKILL follows SIGTERM for a stop that began at `began` with `grace` seconds.
    Without a preStop hook, at the end of the grace period. After one, kubelet takes the
    hook's time in whole seconds off the grace period and leaves the container what remains,
    but at least MIN_STOP_WINDOW."""
    if hook_end is None:
        return began + grace
    spent = int(max(hook_end - began, 0.0))
    return hook_end + max(grace - spent, MIN_STOP_WINDOW)
