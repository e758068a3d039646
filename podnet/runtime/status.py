"""Container lifecycle and pod status, as kubelet decides them (pure).

The runtime keeps one `Record` per container: how many runs it started, the current run and
the one before, and kubelet's back-off entry for it. Everything here is a function of those
records, the pod and `now` (seconds since the epoch, passed in):

- `plan()`: what to start or stop now, and when to look again. Init containers run one at a
  time, in order; a sidecar (an init container with restartPolicy Always) has to be running
  before the next one starts and is restarted whenever it exits. Then the regular containers
  start together and are restarted per the pod's restartPolicy (Always; OnFailure: after a
  non-zero exit; Never). A failed init container is restarted too, unless the policy is Never,
  which fails the pod.
- Back-off, kubelet's flowcontrol.Backoff without jitter: the first restart is immediate and
  creates an entry of 10 s; each later restart doubles it, up to 300 s; a run that ends more
  than 600 s (twice the maximum) after the entry was last updated starts over: restarts at once
  and goes back to 10 s. While a container waits, its state is waiting/CrashLoopBackOff with
  "back-off 20s restarting failed container=..." and the last exit in lastState.
- `pod_status()`: phase (kubelet's getPhase), the conditions PodReadyToStartContainers,
  Initialized, Ready, ContainersReady and PodScheduled (transition times kept while a
  condition's status stays the same), container statuses (regular ones sorted by name, init
  ones in spec order), IPs, startTime, qosClass, observedGeneration.

Probes (podnet.runtime.probes) feed in as one `Health` per running container: whether it has
started (its startup probe succeeded) and is ready (its readiness probe succeeded). Without a
Health for the current run, a running container is started unless it has a startupProbe, and
ready once started unless it has a readinessProbe. A sidecar must have started before the next
init container runs. A run killed for failing its liveness or startup probe (`Run.killed_by`)
is restarted unless the restartPolicy is Never, whatever its exit code.

Two more inputs come from the pod worker. `starting`: containers whose process runs but whose
postStart hook (podnet.runtime.hooks) has not finished; kubelet has not finished creating them,
so they are reported waiting, not started and not ready. `terminating`: the pod is being
deleted; running containers are reported as they are (Ready follows the readiness probe until
they exit), exited ones as terminated (nothing restarts), and once nothing runs the phase is
terminal, as kubelet reports a deleted pod before it goes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from podnet.api.strategy import qos_class

INITIAL_BACKOFF = 10.0
MAX_BACKOFF = 300.0
BACKOFF_RESET = 2 * MAX_BACKOFF

KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                      "PodScheduled")

Obj = Mapping[str, Any]


# -- records ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """One execution of a container."""

    started_at: float
    container_id: str = ""
    sandbox: int = 0                 # the generation of the sandbox it ran in
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""                 # once finished: Completed, Error, ContainerStatusUnknown
    message: str = ""
    killed_by: str = ""              # "liveness" or "startup": killed for failing that probe

    @property
    def running(self) -> bool:
        return self.finished_at is None


@dataclass(frozen=True)
class Record:
    """What the runtime remembers about one container."""

    name: str
    runs: int = 0                    # runs started so far
    current: Run | None = None
    previous: Run | None = None
    backoff: float = 0.0             # kubelet's back-off entry: the delay, 0 when there is none
    backoff_at: float = 0.0          # when that entry was last updated

    @property
    def restart_count(self) -> int:
        return max(self.runs - 1, 0)

    @property
    def exited(self) -> Run | None:
        """The current run when it has finished."""
        return self.current if self.current is not None and not self.current.running else None


@dataclass(frozen=True)
class Health:
    """What the probes say of a container run (podnet.runtime.probes.health)."""

    container_id: str                # the run it is about
    started: bool = True
    ready: bool = True


def killed_by_probe(rec: Record, kind: str) -> Record:
    """The current run is being killed because its `kind` probe failed."""
    if rec.current is None or not rec.current.running:
        return rec
    return replace(rec, current=replace(rec.current, killed_by=kind))


def exit_reason(exit_code: int) -> str:
    return "Completed" if exit_code == 0 else "Error"


def started(rec: Record, now: float, container_id: str, sandbox: int) -> Record:
    """A new run began. Replacing a finished run moves the back-off entry (kubelet's Next)."""
    backoff, backoff_at = rec.backoff, rec.backoff_at
    last = rec.exited
    if last is not None:
        if backoff == 0 or _expired(last, backoff_at):
            backoff = INITIAL_BACKOFF
        else:
            backoff = min(backoff * 2, MAX_BACKOFF)
        backoff_at = now
    return Record(rec.name, rec.runs + 1, Run(now, container_id, sandbox), rec.current,
                  backoff, backoff_at)


def exited(rec: Record, exit_code: int, finished_at: float, *, reason: str = "",
           message: str = "") -> Record:
    """The current run ended."""
    if rec.current is None or not rec.current.running:
        return rec
    run = replace(rec.current, finished_at=finished_at, exit_code=exit_code,
                  reason=reason or exit_reason(exit_code), message=message)
    return replace(rec, current=run)


def _expired(last: Run, backoff_at: float) -> bool:
    return (last.finished_at or 0.0) - backoff_at > BACKOFF_RESET


def backoff_until(rec: Record, now: float) -> float | None:
    """When the back-off of a finished container ends, or None when it may restart now."""
    last = rec.exited
    if last is None or rec.backoff == 0 or _expired(last, rec.backoff_at):
        return None
    end = (last.finished_at or 0.0) + rec.backoff
    return end if now < end else None


# -- the pod spec -------------------------------------------------------------------------------

def _spec(pod: Obj) -> Obj:
    spec = pod.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _containers(pod: Obj, key: str) -> list[Obj]:
    raw = _spec(pod).get(key)
    return [c for c in raw if isinstance(c, Mapping)] if isinstance(raw, list) else []


def _name(c: Obj) -> str:
    return str(c.get("name", ""))


def restart_policy(pod: Obj) -> str:
    return str(_spec(pod).get("restartPolicy") or "Always")


def is_sidecar(c: Obj) -> bool:
    """An init container with restartPolicy Always keeps running beside the others."""
    return c.get("restartPolicy") == "Always"


def _restarts(policy: str, run: Run) -> bool:
    """Whether a regular container's finished run is followed by another: always with
    Always; with OnFailure after a failure, or a kill for a failed liveness/startup probe."""
    return policy == "Always" or (policy == "OnFailure" and (run.exit_code != 0
                                                             or bool(run.killed_by)))


# -- decisions ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    start: tuple[str, ...] = ()      # start these now, in this order
    stop: tuple[str, ...] = ()       # stop these (sidecars once the pod is done)
    wake_at: float | None = None     # look again then (a back-off ends)
    terminal: bool = False           # nothing will run any more: the pod Succeeded or Failed


def _run_in(rec: Record | None, sandbox: int) -> Run | None:
    if rec is None or rec.current is None or rec.current.sandbox != sandbox:
        return None
    return rec.current


def _any_regular_started(pod: Obj, records: Mapping[str, Record], sandbox: int) -> bool:
    return any(_run_in(records.get(_name(c)), sandbox) is not None
               for c in _containers(pod, "containers"))


def started_now(c: Obj, run: Run, health: Mapping[str, Health] | None) -> bool:
    """Whether a running container has started: its startup probe succeeded (per `health`
    for this run), or it has no startup probe."""
    h = health.get(_name(c)) if health is not None else None
    if h is not None and h.container_id == run.container_id:
        return h.started
    return not isinstance(c.get("startupProbe"), Mapping)


def ready_now(c: Obj, run: Run, health: Mapping[str, Health] | None) -> bool:
    """Whether a running container is ready: started, and its readiness probe succeeded (per
    `health` for this run), or it has no readiness probe."""
    h = health.get(_name(c)) if health is not None else None
    if h is not None and h.container_id == run.container_id:
        return h.started and h.ready
    return started_now(c, run, health) and not isinstance(c.get("readinessProbe"), Mapping)


def _init_complete(c: Obj, rec: Record | None, sandbox: int,
                   health: Mapping[str, Health] | None = None) -> bool:
    run = _run_in(rec, sandbox)
    if run is None:
        return False
    if is_sidecar(c):
        return run.running and (health is None or started_now(c, run, health))
    return not run.running and run.exit_code == 0


def initialized(pod: Obj, records: Mapping[str, Record], sandbox: int,
                health: Mapping[str, Health] | None = None) -> bool:
    """Init is over: every init container completed (sidecars running, and started when
    `health` is given) in this sandbox, or a regular container has already started in it."""
    return _any_regular_started(pod, records, sandbox) or all(
        _init_complete(c, records.get(_name(c)), sandbox, health)
        for c in _containers(pod, "initContainers"))


def init_failed(pod: Obj, records: Mapping[str, Record], sandbox: int) -> bool:
    """With restartPolicy Never, a failed init container fails the pod."""
    if restart_policy(pod) != "Never":
        return False
    for c in _containers(pod, "initContainers"):
        run = _run_in(records.get(_name(c)), sandbox)
        if not is_sidecar(c) and run is not None and not run.running and run.exit_code != 0:
            return True
    return False


def regulars_done(pod: Obj, records: Mapping[str, Record]) -> bool:
    """Every regular container has exited and none will be restarted."""
    policy = restart_policy(pod)
    if policy == "Always":
        return False
    for c in _containers(pod, "containers"):
        rec = records.get(_name(c))
        last = rec.exited if rec is not None else None
        if last is None or _restarts(policy, last):
            return False
    return bool(_containers(pod, "containers"))


def terminal(pod: Obj, records: Mapping[str, Record], sandbox: int) -> bool:
    return init_failed(pod, records, sandbox) or (
        initialized(pod, records, sandbox) and regulars_done(pod, records))


def may_recreate_sandbox(pod: Obj, records: Mapping[str, Record]) -> bool:
    """kubelet does not make a new sandbox for a restartPolicy Never pod that already ran."""
    return restart_policy(pod) != "Never" or not any(r.runs for r in records.values())


class _Planner:
    def __init__(self, records: Mapping[str, Record], now: float) -> None:
        self.records = records
        self.now = now
        self.start: list[str] = []
        self.wake_at: float | None = None

    def want(self, name: str, *, restart: bool) -> None:
        """The container is not running: start it if it never ran, or restart it when allowed
        and its back-off is over."""
        rec = self.records.get(name)
        if rec is None or rec.current is None:
            self.start.append(name)
        elif rec.current.running or not restart:
            return
        else:
            until = backoff_until(rec, self.now)
            if until is None:
                self.start.append(name)
            elif self.wake_at is None or until < self.wake_at:
                self.wake_at = until


def plan(pod: Obj, records: Mapping[str, Record], now: float, *, sandbox_ready: bool,
         sandbox: int, health: Mapping[str, Health] | None = None) -> Plan:
    """What to do now for a pod whose sandbox generation is `sandbox`. With `health`, a
    sidecar must also have started (startup probe) before the next init container runs."""
    if terminal(pod, records, sandbox):
        running = tuple(name for name, rec in records.items()
                        if rec.current is not None and rec.current.running)
        return Plan(stop=running, terminal=True)
    if not sandbox_ready:
        return Plan()
    policy = restart_policy(pod)
    p = _Planner(records, now)
    if not initialized(pod, records, sandbox, health):
        for c in _containers(pod, "initContainers"):
            rec = records.get(_name(c))
            if _init_complete(c, rec, sandbox, health):
                continue
            run = _run_in(rec, sandbox)
            if run is None:
                p.start.append(_name(c))
            else:
                p.want(_name(c), restart=is_sidecar(c) or policy != "Never")
            break
        return Plan(start=tuple(p.start), wake_at=p.wake_at)
    for c in _containers(pod, "initContainers"):
        if is_sidecar(c):
            p.want(_name(c), restart=True)
    for c in _containers(pod, "containers"):
        rec = records.get(_name(c))
        last = rec.exited if rec is not None else None
        p.want(_name(c), restart=last is not None and _restarts(policy, last))
    return Plan(start=tuple(p.start), wake_at=p.wake_at)


# -- status -------------------------------------------------------------------------------------

def rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(int(t), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration(seconds: float) -> str:
    """Whole seconds as Go prints a time.Duration: 10s, 1m20s, 5m0s, 1h0m0s."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def pod_ref(pod: Obj) -> str:
    """kubelet's format.Pod: name_namespace(uid)."""
    meta = pod.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def crashloop_message(pod: Obj, name: str, backoff: float) -> str:
    return (f"back-off {go_duration(backoff)} restarting failed container={name} "
            f"pod={pod_ref(pod)}")


def _terminated(run: Run) -> dict[str, Any]:
    out: dict[str, Any] = {"exitCode": run.exit_code if run.exit_code is not None else 0,
                           "reason": run.reason or exit_reason(run.exit_code or 0)}
    if run.message:
        out["message"] = run.message
    out["startedAt"] = rfc3339(run.started_at)
    out["finishedAt"] = rfc3339(run.finished_at if run.finished_at is not None else 0.0)
    if run.container_id:
        out["containerID"] = run.container_id
    return out


def _last_state(run: Run | None) -> dict[str, Any]:
    if run is None or run.running:
        return {}
    return {"terminated": _terminated(run)}


@dataclass(frozen=True)
class _Ctx:
    pod: Obj
    policy: str
    now: float
    terminal: bool                   # nothing restarts any more (the pod ended or is deleted)
    default_waiting: str
    health: Mapping[str, Health] | None = None
    starting: frozenset[str] = frozenset()


def _will_restart(c: Obj, run: Run, *, init: bool, ctx: _Ctx) -> bool:
    if ctx.terminal:
        return False
    if init and not is_sidecar(c):
        return run.exit_code != 0 and ctx.policy != "Never"
    return is_sidecar(c) or _restarts(ctx.policy, run)


def container_status(c: Obj, rec: Record | None, *, init: bool, ctx: _Ctx) -> dict[str, Any]:
    name = _name(c)
    image = str(c.get("image", ""))
    run = rec.current if rec is not None else None
    if rec is None or run is None:
        return {"name": name, "state": {"waiting": {"reason": ctx.default_waiting}},
                "lastState": {}, "ready": False, "restartCount": 0, "image": image,
                "imageID": "", "started": False}
    regular_init = init and not is_sidecar(c)
    if run.running and name in ctx.starting:
        # its postStart hook runs: kubelet has not finished creating it
        return {"name": name, "state": {"waiting": {"reason": ctx.default_waiting}},
                "lastState": _last_state(rec.previous), "ready": False,
                "restartCount": rec.restart_count, "image": image, "imageID": "",
                "started": False}
    out: dict[str, Any] = {"name": name}
    if run.running:
        out["state"] = {"running": {"startedAt": rfc3339(run.started_at)}}
        out["lastState"] = _last_state(rec.previous)
        if regular_init:
            ready, started_ = False, True
        else:
            ready, started_ = ready_now(c, run, ctx.health), started_now(c, run, ctx.health)
    else:
        until = backoff_until(rec, ctx.now)
        if until is not None and _will_restart(c, run, init=init, ctx=ctx):
            out["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                        "message": crashloop_message(ctx.pod, name, rec.backoff)}}
            out["lastState"] = _last_state(run)
        else:
            out["state"] = {"terminated": _terminated(run)}
            out["lastState"] = _last_state(rec.previous)
        ready, started_ = regular_init and run.exit_code == 0, False
    out.update({"ready": ready, "restartCount": rec.restart_count, "image": image,
                "imageID": ""})
    if run.container_id:
        out["containerID"] = run.container_id
    out["started"] = started_
    return out


def _state_kind(status: Obj) -> str:
    state = status.get("state") or {}
    for kind in ("running", "terminated", "waiting"):
        if kind in state:
            return kind
    return ""


def _last_terminated(status: Obj) -> Obj | None:
    last = status.get("lastState") or {}
    term = last.get("terminated")
    return term if isinstance(term, Mapping) else None


def _regular_started(pod: Obj, statuses: Mapping[str, Obj]) -> bool:
    """kubelet's HasAnyRegularContainerStarted: a regular container is running or terminated."""
    return any(_state_kind(statuses.get(_name(c)) or {}) in ("running", "terminated")
               for c in _containers(pod, "containers"))


def phase(pod: Obj, init_statuses: Sequence[Obj], statuses: Sequence[Obj], *,
          terminal: bool) -> str:
    """kubelet's getPhase over the container statuses."""
    by_name = {str(s.get("name")): s for s in (*init_statuses, *statuses)}
    policy = restart_policy(pod)
    pending_init = failed_init = 0
    unknown = running = waiting = stopped = succeeded = 0
    for c in _containers(pod, "initContainers"):
        s = by_name.get(_name(c))
        kind = _state_kind(s) if s is not None else ""
        if is_sidecar(c):
            if s is None:
                unknown += 1
            elif kind == "running":
                pending_init += 0 if s.get("started") else 1
                running += 1
            elif kind == "waiting" and _last_terminated(s) is None:
                pending_init += 1
                waiting += 1
            elif kind not in ("terminated", "waiting"):
                pending_init += 1
                unknown += 1
            continue
        if s is None or kind == "running":
            pending_init += 1
        elif kind == "terminated":
            failed_init += 1 if s["state"]["terminated"].get("exitCode") != 0 else 0
        elif kind == "waiting":
            last = _last_terminated(s)
            if last is None:
                pending_init += 1
            elif last.get("exitCode") != 0:
                failed_init += 1
        else:
            pending_init += 1
    for c in _containers(pod, "containers"):
        s = by_name.get(_name(c))
        kind = _state_kind(s) if s is not None else ""
        if s is None or not kind:
            unknown += 1
        elif kind == "running":
            running += 1
        elif kind == "terminated":
            stopped += 1
            succeeded += 1 if s["state"]["terminated"].get("exitCode") == 0 else 0
        elif _last_terminated(s) is not None:
            stopped += 1
        else:
            waiting += 1
    if failed_init and policy == "Never":
        return "Failed"
    regular_started = _regular_started(pod, by_name)
    if (pending_init and not regular_started) or waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def _probe_restart_pending(pod: Obj, records: Mapping[str, Record]) -> bool:
    """A regular container killed for failing a probe is about to run again (kubelet kills
    and restarts it in one sync, so its pod never looks finished in between)."""
    if restart_policy(pod) == "Never":
        return False
    for c in _containers(pod, "containers"):
        rec = records.get(_name(c))
        last = rec.exited if rec is not None else None
        if last is not None and last.killed_by:
            return True
    return False


def _names(names: Sequence[str]) -> str:
    return "[" + " ".join(names) + "]"  # Go's %s of a []string


def _readiness(pod: Obj, statuses: Mapping[str, Obj], ph: str) -> tuple[str, str, str]:
    """(status, reason, message) of ContainersReady, which Ready copies."""
    unknown: list[str] = []
    unready: list[str] = []
    for c in [*(c for c in _containers(pod, "initContainers") if is_sidecar(c)),
              *_containers(pod, "containers")]:
        s = statuses.get(_name(c))
        if s is None:
            unknown.append(_name(c))
        elif not s.get("ready"):
            unready.append(_name(c))
    if ph == "Succeeded" and not unknown:
        return "False", "PodCompleted", ""
    if ph == "Failed":
        return "False", "PodFailed", ""
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_names(unknown)}")
    if unready:
        messages.append(f"containers with unready status: {_names(unready)}")
    if messages:
        return "False", "ContainersNotReady", ", ".join(messages)
    return "True", "", ""


def _ready_with_gates(pod: Obj, containers_ready: tuple[str, str, str],
                      conditions: Mapping[str, Obj]) -> tuple[str, str, str]:
    """Ready: ContainersReady, and every readiness gate's condition True."""
    if containers_ready[0] != "True":
        return containers_ready
    messages = []
    gates = _spec(pod).get("readinessGates")
    for gate in gates if isinstance(gates, list) else []:
        ctype = str(gate.get("conditionType", "")) if isinstance(gate, Mapping) else ""
        cond = conditions.get(ctype)
        if cond is None:
            messages.append(f'corresponding condition of pod readiness gate "{ctype}" does not '
                            "exist.")
        elif cond.get("status") != "True":
            messages.append(f'the status of pod readiness gate "{ctype}" is not "True", but '
                            f"{cond.get('status')}")
    if messages:
        return "False", "ReadinessGatesNotReady", ", ".join(messages)
    return containers_ready


def _initialized_condition(pod: Obj, statuses: Mapping[str, Obj], ph: str) -> tuple[str, str, str]:
    incomplete: list[str] = []
    unknown: list[str] = []
    for c in _containers(pod, "initContainers"):
        s = statuses.get(_name(c))
        if s is None:
            unknown.append(_name(c))
        elif not (s.get("started") if is_sidecar(c) else s.get("ready")):
            incomplete.append(_name(c))
    if ph == "Succeeded" and not unknown:
        return "True", "PodCompleted", ""
    if _regular_started(pod, statuses):
        return "True", "", ""
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_names(unknown)}")
    if incomplete:
        messages.append(f"containers with incomplete status: {_names(incomplete)}")
    if messages:
        return "False", "ContainersNotInitialized", ", ".join(messages)
    return "True", "", ""


def _generation(pod: Obj) -> int | None:
    meta = pod.get("metadata")
    gen = meta.get("generation") if isinstance(meta, Mapping) else None
    return gen if isinstance(gen, int) and not isinstance(gen, bool) else None


def _condition(ctype: str, status: str, reason: str, message: str, *, old: Obj | None,
               now: float, generation: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": ctype, "status": status}
    if generation is not None:
        out["observedGeneration"] = generation
    if old is not None and old.get("status") == status and old.get("lastTransitionTime"):
        out["lastTransitionTime"] = old["lastTransitionTime"]
    else:
        out["lastTransitionTime"] = rfc3339(now)
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


@dataclass(frozen=True)
class Sandbox:
    """What the status needs to know of the pod's sandbox."""

    ready: bool                      # namespaces, network and pause are up
    ips: tuple[str, ...] = ()
    generation: int = 0


@dataclass(frozen=True)
class StatusInput:
    pod: Obj
    records: Mapping[str, Record]
    sandbox: Sandbox
    node_ip: str
    now: float
    start_time: float | None = None
    old: Obj | None = None           # the status last reported (keeps transition times)
    health: Mapping[str, Health] | None = None  # what the probes say, by container name
    terminating: bool = False        # being deleted: no restarts; once nothing runs, over
    starting: frozenset[str] = frozenset()  # running, but their postStart hook runs still


def pod_status(inp: StatusInput) -> dict[str, Any]:
    """The status kubelet would report for the pod."""
    pod = inp.pod
    is_terminal = (inp.terminating or terminal(pod, inp.records, inp.sandbox.generation)) \
        and not any(r.current is not None and r.current.running for r in inp.records.values())
    inits = _containers(pod, "initContainers")
    ctx = _Ctx(pod, restart_policy(pod), inp.now, is_terminal or inp.terminating,
               "PodInitializing" if inits else "ContainerCreating", inp.health, inp.starting)
    init_statuses = [container_status(c, inp.records.get(_name(c)), init=True, ctx=ctx)
                     for c in inits]
    statuses = sorted((container_status(c, inp.records.get(_name(c)), init=False, ctx=ctx)
                       for c in _containers(pod, "containers")), key=lambda s: str(s["name"]))
    ph = phase(pod, init_statuses, statuses, terminal=is_terminal)
    if ph == "Succeeded" and not inp.terminating and _probe_restart_pending(pod, inp.records):
        ph = "Running"
    by_name = {str(s["name"]): s for s in (*init_statuses, *statuses)}
    old = inp.old or {}
    old_conditions = [c for c in old.get("conditions") or [] if isinstance(c, Mapping)]
    old_by_type = {str(c.get("type")): c for c in old_conditions}
    gen = _generation(pod)
    containers_ready = _readiness(pod, by_name, ph)
    generated = {
        "PodReadyToStartContainers": ("True" if inp.sandbox.ready else "False", "", ""),
        "Initialized": _initialized_condition(pod, by_name, ph),
        "Ready": _ready_with_gates(pod, containers_ready, old_by_type),
        "ContainersReady": containers_ready,
        "PodScheduled": ("True", "", ""),
    }
    conditions: list[dict[str, Any]] = [dict(c) for c in old_conditions
                                        if c.get("type") not in KUBELET_CONDITIONS]
    for ctype in KUBELET_CONDITIONS:
        status, reason, message = generated[ctype]
        conditions.append(_condition(ctype, status, reason, message, old=old_by_type.get(ctype),
                                     now=inp.now, generation=gen))
    out: dict[str, Any] = {"phase": ph, "conditions": conditions}
    if inp.node_ip:
        out["hostIP"] = inp.node_ip
        out["hostIPs"] = [{"ip": inp.node_ip}]
    if inp.sandbox.ips:
        out["podIP"] = inp.sandbox.ips[0]
        out["podIPs"] = [{"ip": ip} for ip in inp.sandbox.ips]
    if inp.start_time is not None:
        out["startTime"] = rfc3339(inp.start_time)
    if init_statuses:
        out["initContainerStatuses"] = init_statuses
    out["containerStatuses"] = statuses
    out["qosClass"] = str(old.get("qosClass") or qos_class(dict(pod)))
    if gen is not None:
        out["observedGeneration"] = gen
    return out
