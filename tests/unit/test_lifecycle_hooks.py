"""Lifecycle hooks (postStart, preStop) and a terminating pod's status, as kubelet has them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from podnet.api.validation.core import validate_pod
from podnet.runtime import hooks
from podnet.runtime import status as st
from podnet.runtime.hooks import Hook, Sleep
from podnet.runtime.prober import ContainerProbes
from podnet.runtime.probes import FAILURE, SUCCESS, Exec, HttpGet, Outcome, Unsupported
from podnet.runtime.status import Health, Record, Run, Sandbox, StatusInput

POD_IP = "10.244.1.5"
UID = "0f8fad5b-d9cb-469f-a165-70867728950e"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
READY = Sandbox(ready=True, ips=(POD_IP,), generation=1)


def ctr(**lifecycle: Any) -> dict[str, Any]:
    return {"name": "web", "image": "x", "ports": [{"name": "http", "containerPort": 8080}],
            "env": [{"name": "WHO", "value": "me"}], "lifecycle": lifecycle}


# -- parsing ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("handler", "action"), [
    pytest.param({"exec": {"command": ["sh", "-c", "echo $(WHO)"]}},
                 Exec(("sh", "-c", "echo $(WHO)")), id="exec-not-expanded"),
    pytest.param({"httpGet": {"path": "drain", "port": "http", "scheme": "HTTP"}},
                 HttpGet("http", POD_IP, 8080, "/drain", (), "kube-lifecycle/1.37"),
                 id="http-named-port"),
    pytest.param({"httpGet": {"path": "/q", "port": 81, "host": "10.0.0.9", "scheme": "HTTPS",
                              "httpHeaders": [{"name": "x-why", "value": "stop"}]}},
                 HttpGet("https", "10.0.0.9", 81, "/q", (("X-Why", "stop"),),
                         "kube-lifecycle/1.37"), id="https-host-headers"),
    pytest.param({"sleep": {"seconds": 8}}, Sleep(8), id="sleep"),
    pytest.param({"sleep": {"seconds": 0}}, Sleep(0), id="sleep-zero"),
    pytest.param({"httpGet": {"path": "/", "port": "nope"}},
                 Unsupported('strconv.Atoi: parsing "nope": invalid syntax'), id="bad-port"),
    pytest.param({"tcpSocket": {"port": 8080}},
                 Unsupported('invalid handler: {"tcpSocket": {"port": 8080}}'), id="tcp"),
    pytest.param({"exec": {"command": []}}, Unsupported("exec hook has no command"),
                 id="exec-empty"),
])
def test_each_handler_becomes_an_action(handler: dict[str, Any], action: Any) -> None:
    c = ctr(preStop=handler, postStart=handler)
    assert hooks.parse(c, hooks.PRE_STOP, POD_IP) == Hook(hooks.PRE_STOP, action)
    assert hooks.parse(c, hooks.POST_START, POD_IP) == Hook(hooks.POST_START, action)


def test_a_container_without_the_hook_has_none() -> None:
    assert hooks.parse({"name": "a"}, hooks.PRE_STOP, POD_IP) is None
    assert hooks.parse(ctr(postStart={"sleep": {"seconds": 1}}), hooks.PRE_STOP, POD_IP) is None
    assert hooks.parse({"name": "a", "lifecycle": "junk"}, hooks.POST_START, POD_IP) is None


def test_the_hook_request_says_kube_lifecycle() -> None:
    hook = hooks.parse(ctr(preStop={"httpGet": {"path": "/drain", "port": 8080}}),
                       hooks.PRE_STOP, POD_IP)
    assert hook is not None and isinstance(hook.action, HttpGet)
    assert hook.action.request() == (
        b"GET /drain HTTP/1.1\r\nHost: 10.244.1.5:8080\r\nUser-Agent: kube-lifecycle/1.37\r\n"
        b"Accept: */*\r\nConnection: close\r\n\r\n")


# -- words --------------------------------------------------------------------------------------

def test_events_carry_no_detail() -> None:
    assert hooks.failed_event(hooks.PRE_STOP) == ("FailedPreStopHook", "PreStopHook failed")
    assert hooks.failed_event(hooks.POST_START) == ("FailedPostStartHook",
                                                    "PostStartHook failed")
    assert hooks.POST_START_KILL_MESSAGE == "FailedPostStartHook"


@pytest.mark.parametrize(("action", "text"), [
    pytest.param(Exec(("sh", "-c", "exit 3")),
                 'Exec lifecycle hook ([sh -c exit 3]) for Container "web" in Pod '
                 '"p_default(u)" failed - error: boom', id="exec"),
    pytest.param(HttpGet("http", POD_IP, 80, "/drain"),
                 'HTTP lifecycle hook (/drain) for Container "web" in Pod "p_default(u)" '
                 "failed - error: boom", id="http"),
    pytest.param(Sleep(3), 'Sleep lifecycle hook (3) for Container "web" in Pod '
                 '"p_default(u)" failed - error: boom', id="sleep"),
    pytest.param(Unsupported("invalid handler: {}"), "Cannot run handler: boom",
                 id="unsupported"),
])
def test_failure_messages_for_the_log(action: Any, text: str) -> None:
    assert hooks.failure_message(Hook(hooks.PRE_STOP, action), "web", "p_default(u)",
                                 "boom") == text


# -- time ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("grace", "hook_end", "kill"), [
    pytest.param(30, None, 130.0, id="no-hook: the grace period"),
    pytest.param(30, 108.4, 108.4 + 22, id="hook took 8.4 s: 22 s left"),
    pytest.param(10, 109.9, 109.9 + 2, id="hook took 9.9 s of 10: at least 2 s"),
    pytest.param(10, 110.0, 110.0 + 2, id="hook used it all: at least 2 s"),
    pytest.param(0, None, 100.0, id="grace 0: at once"),
])
def test_sigkill_time(grace: int, hook_end: float | None, kill: float) -> None:
    assert hooks.kill_at(100.0, grace, hook_end) == pytest.approx(kill)


def test_pre_stop_runs_only_with_a_grace_period_and_ends_with_it() -> None:
    assert hooks.runs_pre_stop(1) and not hooks.runs_pre_stop(0)
    assert hooks.hook_deadline(100.0, 30) == 130.0


# -- validation already accepts them ------------------------------------------------------------

def pod_with(lifecycle: dict[str, Any], grace: int = 30) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"terminationGracePeriodSeconds": grace, "restartPolicy": "Always",
                     "dnsPolicy": "ClusterFirst",
                     "containers": [{"name": "c", "image": "x", "lifecycle": lifecycle,
                                     "imagePullPolicy": "IfNotPresent",
                                     "terminationMessagePath": "/dev/termination-log",
                                     "terminationMessagePolicy": "File"}]}}


@pytest.mark.parametrize("lifecycle", [
    pytest.param({"preStop": {"sleep": {"seconds": 8}}}, id="preStop-sleep"),
    pytest.param({"preStop": {"exec": {"command": ["true"]}},
                  "postStart": {"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}}},
                 id="exec-and-http"),
    pytest.param({"postStart": {"sleep": {"seconds": 0}}}, id="postStart-sleep-0"),
])
def test_validation_accepts_the_hooks(lifecycle: dict[str, Any]) -> None:
    assert validate_pod(pod_with(lifecycle), None) == []


def test_validation_rejects_a_sleep_longer_than_the_grace_period() -> None:
    errs = validate_pod(pod_with({"preStop": {"sleep": {"seconds": 31}}}), None)
    assert [str(e) for e in errs] == [
        "spec.containers[0].lifecycle.preStop.sleep: Invalid value: 31: must be non-negative "
        "and less than terminationGracePeriodSeconds (30)"]


# -- status while a postStart hook runs ---------------------------------------------------------

def pod(*names: str, init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {"restartPolicy": "Always",
                         "containers": [{"name": n, "image": f"img-{n}"} for n in names]}
    if init is not None:
        s["initContainers"] = init
    return {"metadata": {"name": "web", "namespace": "default", "uid": UID, "generation": 1},
            "spec": s}


def running(name: str, runs: int = 1, **kw: Any) -> Record:
    return Record(name, runs, Run(T0, f"id-{name}-{runs}", 1), **kw)


def exited(name: str, code: int, runs: int = 1) -> Record:
    return Record(name, runs, Run(T0, f"id-{name}-{runs}", 1, T0 + 5, code,
                                  st.exit_reason(code)))


def status(p: dict[str, Any], *recs: Record, starting: frozenset[str] = frozenset(),
           terminating: bool = False, health: dict[str, Health] | None = None
           ) -> dict[str, Any]:
    return st.pod_status(StatusInput(pod=p, records={r.name: r for r in recs}, sandbox=READY,
                                     node_ip="172.18.0.11", now=T0 + 10, start_time=T0,
                                     health=health, terminating=terminating,
                                     starting=starting))


def cond(s: dict[str, Any], ctype: str) -> dict[str, str]:
    c = next(c for c in s["conditions"] if c["type"] == ctype)
    return {k: c[k] for k in ("status", "reason", "message") if k in c}


def test_a_container_whose_post_start_runs_is_still_being_created() -> None:
    s = status(pod("a", "b"), running("a"), running("b"), starting=frozenset({"a"}))
    a, b = s["containerStatuses"]
    assert a == {"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}},
                 "lastState": {}, "ready": False, "restartCount": 0, "image": "img-a",
                 "imageID": "", "started": False}
    assert b["state"] == {"running": {"startedAt": "2023-11-14T22:13:20Z"}} and b["ready"]
    assert s["phase"] == "Pending"
    assert cond(s, "Ready") == {"status": "False", "reason": "ContainersNotReady",
                                "message": "containers with unready status: [a]"}


def test_a_restarted_container_whose_post_start_runs_keeps_its_last_run() -> None:
    prev = Run(T0 - 9, "id-a-1", 1, T0 - 2, 1, "Error")
    rec = Record("a", 2, Run(T0, "id-a-2", 1), prev, 10.0, T0)
    s = status(pod("a"), rec, starting=frozenset({"a"}))
    (a,) = s["containerStatuses"]
    assert a["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert a["lastState"]["terminated"]["exitCode"] == 1
    assert (a["restartCount"], a["started"], a["ready"]) == (1, False, False)
    assert s["phase"] == "Running"


def test_a_sidecar_whose_post_start_runs_holds_the_next_init_container() -> None:
    p = pod("main", init=[{"name": "side", "restartPolicy": "Always"}, {"name": "i2"}])
    side = running("side")
    unstarted = {"side": Health("id-side-1", started=False, ready=False)}
    assert st.plan(p, {"side": side}, T0, sandbox_ready=True, sandbox=1,
                   health=unstarted) == st.Plan()
    s = status(p, side, starting=frozenset({"side"}), health=unstarted)
    assert s["initContainerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert s["phase"] == "Pending"


# -- status while the pod terminates ------------------------------------------------------------

def test_a_terminating_pod_stays_ready_while_its_containers_run_and_are_ready() -> None:
    s = status(pod("a"), running("a"), terminating=True)
    assert s["phase"] == "Running"
    assert cond(s, "Ready") == {"status": "True"}
    p = pod("a")
    p["spec"]["containers"][0]["readinessProbe"] = {"exec": {"command": ["true"]}}
    s = status(p, running("a"), terminating=True,
               health={"a": Health("id-a-1", started=True, ready=False)})
    assert s["phase"] == "Running"
    assert cond(s, "Ready")["status"] == "False"


def test_a_terminating_pod_does_not_show_a_restart_coming() -> None:
    # a exited while b still runs its preStop hook: a is terminated, not in back-off
    rec = Record("a", 2, Run(T0, "id-a-2", 1, T0 + 5, 143, "Error"), None, 10.0, T0)
    s = status(pod("a", "b"), rec, running("b"), terminating=True)
    a, b = s["containerStatuses"]
    assert a["state"] == {"terminated": {
        "exitCode": 143, "reason": "Error", "startedAt": "2023-11-14T22:13:20Z",
        "finishedAt": "2023-11-14T22:13:25Z", "containerID": "id-a-2"}}
    assert a["ready"] is False and b["ready"] is True
    assert s["phase"] == "Running"
    assert cond(s, "Ready")["status"] == "False"
    s_live = status(pod("a", "b"), rec, running("b"))
    assert "waiting" in s_live["containerStatuses"][0]["state"]  # not terminating: back-off


@pytest.mark.parametrize(("codes", "phase", "reason"), [
    pytest.param((0, 0), "Succeeded", "PodCompleted", id="all-0"),
    pytest.param((0, 137), "Failed", "PodFailed", id="one-killed"),
])
def test_once_nothing_runs_a_terminating_pod_is_over(codes: tuple[int, int], phase: str,
                                                     reason: str) -> None:
    s = status(pod("a", "b"), exited("a", codes[0]), exited("b", codes[1]), terminating=True)
    assert s["phase"] == phase
    assert cond(s, "Ready") == {"status": "False", "reason": reason}
    assert all("terminated" in c["state"] for c in s["containerStatuses"])


# -- probes of a terminating pod ----------------------------------------------------------------

def test_terminating_stops_liveness_and_startup_probes_but_not_readiness() -> None:
    ran: list[str] = []

    class Runner:  # performs no probe: every attempt of the startup probe fails
        async def run(self, probe: Any, *, exec_prefix: Any, env: Any) -> Outcome:
            ran.append(probe.kind)
            return Outcome(SUCCESS if probe.kind != "startup" else FAILURE)

    check = {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 100}
    container = {"name": "c", "startupProbe": check, "livenessProbe": check,
                 "readinessProbe": check}

    async def main() -> None:
        changes: list[None] = []
        probes = ContainerProbes(
            Runner(), container=container, container_id="id-1",
            started_at=time.time(), pod_ip=POD_IP, exec_prefix=list, env={},
            on_change=lambda: changes.append(None), on_unhealthy=lambda _: None)
        probes.start()
        await asyncio.sleep(0.05)
        assert ran == ["startup"] and probes.health() == Health("id-1", started=False,
                                                                ready=False)
        probes.terminating()
        await asyncio.sleep(0.05)
        assert probes.tasks["startup"].cancelled() and probes.tasks["liveness"].cancelled()
        assert not probes.tasks["readiness"].done()
        assert probes.results()["startup"] == SUCCESS and changes == [None, None]
        assert ran[1:] == ["readiness"]  # it runs now that the container counts as started
        assert probes.health() == Health("id-1", started=True, ready=True)
        assert probes.failed() is None
        for task in probes.stop():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(main())
