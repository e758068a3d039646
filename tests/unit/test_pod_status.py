"""Container lifecycle decisions and pod status, as kubelet makes them."""

from __future__ import annotations

from typing import Any

import pytest

from podnet.runtime import status as st
from podnet.runtime.status import Health, Plan, Record, Run, Sandbox, StatusInput

UID = "0f8fad5b-d9cb-469f-a165-70867728950e"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
READY = Sandbox(ready=True, ips=("10.244.1.5",), generation=1)


def pod(*names: str, policy: str = "Always", init: list[dict[str, Any]] | None = None,
        **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"restartPolicy": policy,
                         "containers": [{"name": n, "image": f"img-{n}"} for n in names], **spec}
    if init is not None:
        s["initContainers"] = init
    return {"metadata": {"name": "web", "namespace": "default", "uid": UID, "generation": 1},
            "spec": s}


def running(name: str, at: float = T0, runs: int = 1, sandbox: int = 1, **kw: Any) -> Record:
    return Record(name, runs, Run(at, f"id-{name}-{runs}", sandbox), **kw)


def exited(name: str, code: int, at: float = T0, end: float = T0 + 5, runs: int = 1,
           sandbox: int = 1, **kw: Any) -> Record:
    run = Run(at, f"id-{name}-{runs}", sandbox, end, code, st.exit_reason(code))
    return Record(name, runs, run, **kw)


def plan(p: dict[str, Any], *recs: Record, now: float = T0 + 10, ready: bool = True,
         health: dict[str, Health] | None = None) -> Plan:
    return st.plan(p, {r.name: r for r in recs}, now, sandbox_ready=ready, sandbox=1,
                   health=health)


# -- back-off --------------------------------------------------------------------------------------

def test_backoff_doubles_from_10s_to_300s_and_the_first_restart_is_immediate():
    rec = st.started(Record("c"), T0, "id1", 1)
    t = T0
    seen = []
    for _ in range(8):
        t += 1  # the run lasts one second
        rec = st.exited(rec, 1, t)
        until = st.backoff_until(rec, t)
        seen.append(None if until is None else until - t)
        t = until if until is not None else t
        rec = st.started(rec, t, "id", 1)
    assert seen == [None, 10, 20, 40, 80, 160, 300, 300]
    assert rec.restart_count == 8


def test_backoff_resets_after_ten_minutes_of_running():
    rec = st.started(Record("c"), T0, "id1", 1)
    rec = st.started(st.exited(rec, 1, T0 + 1), T0 + 1, "id2", 1)   # immediate, entry 10 s
    rec = st.exited(rec, 1, T0 + 2)
    assert st.backoff_until(rec, T0 + 2) == T0 + 12
    rec = st.started(rec, T0 + 12, "id3", 1)                            # entry 20 s, at T0+12
    rec = st.exited(rec, 1, T0 + 12 + 601)                               # ran > 600 s
    assert st.backoff_until(rec, T0 + 12 + 601) is None                  # restart at once
    rec = st.started(rec, T0 + 613, "id4", 1)
    assert rec.backoff == 10.0


def test_backoff_is_over_once_the_delay_has_passed():
    rec = exited("c", 1, end=T0, backoff=20.0, backoff_at=T0 - 30)
    assert st.backoff_until(rec, T0 + 19.9) == T0 + 20
    assert st.backoff_until(rec, T0 + 20) is None


@pytest.mark.parametrize(("seconds", "text"), [
    (10, "10s"), (40, "40s"), (80, "1m20s"), (160, "2m40s"), (300, "5m0s"), (3600, "1h0m0s"),
])
def test_go_duration(seconds, text):
    assert st.go_duration(seconds) == text


# -- plans ----------------------------------------------------------------------------------------

def test_new_pod_starts_all_containers_once_the_sandbox_is_ready():
    assert plan(pod("a", "b"), ready=False) == Plan()
    assert plan(pod("a", "b")) == Plan(start=("a", "b"))


@pytest.mark.parametrize(("policy", "code", "start"), [
    ("Always", 0, ("a",)), ("Always", 1, ("a",)),
    ("OnFailure", 0, ()), ("OnFailure", 2, ("a",)),
    ("Never", 0, ()), ("Never", 1, ()),
])
def test_restart_policy(policy, code, start):
    p = pod("a", "b", policy=policy)
    assert plan(p, exited("a", code), running("b")).start == start


def test_crashing_container_waits_for_its_backoff():
    rec = exited("a", 1, end=T0 + 5, runs=2, backoff=10.0, backoff_at=T0)
    assert plan(pod("a"), rec, now=T0 + 6) == Plan(wake_at=T0 + 15)
    assert plan(pod("a"), rec, now=T0 + 15) == Plan(start=("a",))


def test_init_containers_run_one_at_a_time_in_order():
    p = pod("main", init=[{"name": "i1"}, {"name": "i2"}])
    assert plan(p) == Plan(start=("i1",))
    assert plan(p, running("i1")) == Plan()
    assert plan(p, exited("i1", 0)) == Plan(start=("i2",))
    assert plan(p, exited("i1", 0), exited("i2", 0)) == Plan(start=("main",))


def test_failed_init_container_is_retried_unless_never():
    p = pod("main", init=[{"name": "i1"}])
    assert plan(p, exited("i1", 1)) == Plan(start=("i1",))
    never = pod("main", policy="Never", init=[{"name": "i1"}])
    assert plan(never, exited("i1", 1)) == Plan(terminal=True)


def test_init_containers_rerun_in_a_new_sandbox():
    p = pod("main", init=[{"name": "i1"}])
    recs = {"i1": exited("i1", 0, sandbox=1), "main": exited("main", 137, sandbox=1)}
    assert st.plan(p, recs, T0 + 10, sandbox_ready=True, sandbox=2) == Plan(start=("i1",))


def test_sidecar_must_run_before_the_next_init_container_and_is_restarted():
    p = pod("main", init=[{"name": "side", "restartPolicy": "Always"}, {"name": "i2"}])
    assert plan(p) == Plan(start=("side",))
    assert plan(p, running("side")) == Plan(start=("i2",))
    assert plan(p, running("side"), exited("i2", 0)) == Plan(start=("main",))
    assert plan(p, exited("side", 1), exited("i2", 0), running("main")) == Plan(start=("side",))


def test_sidecars_are_stopped_when_the_regular_containers_are_done():
    p = pod("main", policy="Never", init=[{"name": "side", "restartPolicy": "Always"}])
    assert plan(p, running("side"), exited("main", 0)) == Plan(stop=("side",), terminal=True)


def test_terminal_pod_starts_nothing():
    assert plan(pod("a", "b", policy="OnFailure"), exited("a", 0), exited("b", 0)) == Plan(
        terminal=True)


def test_new_sandbox_only_when_the_policy_allows():
    never = pod("a", policy="Never")
    assert st.may_recreate_sandbox(never, {})
    assert not st.may_recreate_sandbox(never, {"a": exited("a", 137)})
    assert st.may_recreate_sandbox(pod("a"), {"a": exited("a", 137)})


# -- status ---------------------------------------------------------------------------------------

def status(p: dict[str, Any], *recs: Record, sandbox: Sandbox = READY, now: float = T0 + 10,
           old: dict[str, Any] | None = None,
           health: dict[str, Health] | None = None) -> dict[str, Any]:
    return st.pod_status(StatusInput(pod=p, records={r.name: r for r in recs}, sandbox=sandbox,
                                     node_ip="172.18.0.11", now=now, start_time=T0, old=old,
                                     health=health))


def cond(s: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in s["conditions"] if c["type"] == ctype)


def test_running_pod():
    s = status(pod("a"), running("a"))
    assert s == {
        "phase": "Running",
        "conditions": [
            {"type": t, "status": "True", "observedGeneration": 1,
             "lastTransitionTime": "2023-11-14T22:13:30Z"}
            for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                      "PodScheduled")],
        "hostIP": "172.18.0.11", "hostIPs": [{"ip": "172.18.0.11"}],
        "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
        "startTime": "2023-11-14T22:13:20Z",
        "containerStatuses": [{
            "name": "a", "state": {"running": {"startedAt": "2023-11-14T22:13:20Z"}},
            "lastState": {}, "ready": True, "restartCount": 0, "image": "img-a", "imageID": "",
            "containerID": "id-a-1", "started": True}],
        "qosClass": "BestEffort",
        "observedGeneration": 1,
    }


def test_crash_loop_back_off_with_the_exit_code_in_last_state():
    rec = exited("a", 3, end=T0 + 5, runs=2, backoff=10.0, backoff_at=T0)
    s = status(pod("a"), rec, now=T0 + 6)
    assert s["phase"] == "Running"
    assert s["containerStatuses"] == [{
        "name": "a",
        "state": {"waiting": {
            "reason": "CrashLoopBackOff",
            "message": f"back-off 10s restarting failed container=a pod=web_default({UID})"}},
        "lastState": {"terminated": {
            "exitCode": 3, "reason": "Error", "startedAt": "2023-11-14T22:13:20Z",
            "finishedAt": "2023-11-14T22:13:25Z", "containerID": "id-a-2"}},
        "ready": False, "restartCount": 1, "image": "img-a", "imageID": "",
        "containerID": "id-a-2", "started": False}]
    assert cond(s, "Ready") == {
        "type": "Ready", "status": "False", "observedGeneration": 1,
        "lastTransitionTime": "2023-11-14T22:13:26Z", "reason": "ContainersNotReady",
        "message": "containers with unready status: [a]"}


def test_restarted_container_shows_its_previous_run():
    prev = Run(T0, "id-a-1", 1, T0 + 2, 1, "Error")
    rec = Record("a", 2, Run(T0 + 3, "id-a-2", 1), prev, 10.0, T0 + 3)
    (cs,) = status(pod("a"), rec)["containerStatuses"]
    assert cs["state"] == {"running": {"startedAt": "2023-11-14T22:13:23Z"}}
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["restartCount"] == 1


def test_sandbox_not_ready_yet():
    s = status(pod("a", "b"), sandbox=Sandbox(ready=False))
    assert s["phase"] == "Pending"
    assert "podIP" not in s and "podIPs" not in s
    assert cond(s, "PodReadyToStartContainers")["status"] == "False"
    assert [c["state"] for c in s["containerStatuses"]] == [
        {"waiting": {"reason": "ContainerCreating"}}] * 2
    assert cond(s, "ContainersReady")["message"] == "containers with unready status: [a b]"


def test_container_statuses_are_sorted_by_name_and_init_ones_kept_in_order():
    p = pod("zeta", "alpha", init=[{"name": "second"}, {"name": "first"}])
    s = status(p, running("second"))
    assert [c["name"] for c in s["containerStatuses"]] == ["alpha", "zeta"]
    assert [c["name"] for c in s["initContainerStatuses"]] == ["second", "first"]
    assert s["phase"] == "Pending"
    assert cond(s, "Initialized") == {
        "type": "Initialized", "status": "False", "observedGeneration": 1,
        "lastTransitionTime": "2023-11-14T22:13:30Z", "reason": "ContainersNotInitialized",
        "message": "containers with incomplete status: [second first]"}
    assert s["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert s["initContainerStatuses"][1]["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_completed_init_container_is_ready_and_terminated():
    p = pod("main", init=[{"name": "i1"}])
    s = status(p, exited("i1", 0), running("main"))
    (init,) = s["initContainerStatuses"]
    assert init["ready"] is True and init["started"] is False
    assert init["state"]["terminated"]["reason"] == "Completed"
    assert cond(s, "Initialized")["status"] == "True"
    assert s["phase"] == "Running"


@pytest.mark.parametrize(("policy", "recs", "phase", "ready_reason"), [
    pytest.param("Never", [exited("a", 0), exited("b", 0)], "Succeeded", "PodCompleted",
                 id="never-all-succeeded"),
    pytest.param("Never", [exited("a", 0), exited("b", 1)], "Failed", "PodFailed",
                 id="never-one-failed"),
    pytest.param("OnFailure", [exited("a", 0), exited("b", 0)], "Succeeded", "PodCompleted",
                 id="on-failure-done"),
    pytest.param("OnFailure", [exited("a", 0), exited("b", 2)], "Running", "ContainersNotReady",
                 id="on-failure-restarting"),
    pytest.param("Always", [exited("a", 0), exited("b", 0)], "Running", "ContainersNotReady",
                 id="always-restarting"),
    pytest.param("Never", [running("a"), exited("b", 1)], "Running", "ContainersNotReady",
                 id="never-one-still-running"),
])
def test_phase(policy, recs, phase, ready_reason):
    s = status(pod("a", "b", policy=policy), *recs)
    assert s["phase"] == phase
    assert cond(s, "Ready")["reason"] == ready_reason


def test_failed_init_container_fails_a_never_pod():
    s = status(pod("main", policy="Never", init=[{"name": "i1"}]), exited("i1", 1))
    assert s["phase"] == "Failed"


def test_transition_times_are_kept_while_the_status_holds():
    old = status(pod("a"), running("a"), now=T0 + 10)
    later = status(pod("a"), running("a"), now=T0 + 100, old=old)
    assert later == old
    crashed = exited("a", 1, end=T0 + 100, runs=2, backoff=10.0, backoff_at=T0)
    changed = status(pod("a"), crashed, now=T0 + 101, old=old)
    assert cond(changed, "Ready")["lastTransitionTime"] == "2023-11-14T22:15:01Z"
    assert cond(changed, "PodScheduled")["lastTransitionTime"] == "2023-11-14T22:13:30Z"


def test_conditions_set_by_others_are_kept_first():
    old = {"conditions": [{"type": "DisruptionTarget", "status": "True"},
                          {"type": "PodScheduled", "status": "True",
                           "lastTransitionTime": "2023-11-14T22:00:00Z"}]}
    s = status(pod("a"), running("a"), old=old)
    assert [c["type"] for c in s["conditions"]] == [
        "DisruptionTarget", "PodReadyToStartContainers", "Initialized", "Ready",
        "ContainersReady", "PodScheduled"]
    assert cond(s, "PodScheduled")["lastTransitionTime"] == "2023-11-14T22:00:00Z"


def test_readiness_gates():
    p = pod("a", readinessGates=[{"conditionType": "example.com/lb"}])
    s = status(p, running("a"))
    assert cond(s, "Ready")["reason"] == "ReadinessGatesNotReady"
    assert cond(s, "Ready")["message"] == ('corresponding condition of pod readiness gate '
                                           '"example.com/lb" does not exist.')
    assert cond(s, "ContainersReady")["status"] == "True"
    s = status(p, running("a"), old={"conditions": [{"type": "example.com/lb",
                                                      "status": "True"}]})
    assert cond(s, "Ready")["status"] == "True"


def test_lost_exit_code_is_reported_as_unknown():
    rec = st.exited(running("a"), 137, T0 + 5, reason="ContainerStatusUnknown",
                    message="The container could not be located when the pod was terminated")
    s = status(pod("a", policy="Never"), rec)
    assert s["containerStatuses"][0]["state"]["terminated"] == {
        "exitCode": 137, "reason": "ContainerStatusUnknown",
        "message": "The container could not be located when the pod was terminated",
        "startedAt": "2023-11-14T22:13:20Z", "finishedAt": "2023-11-14T22:13:25Z",
        "containerID": "id-a-1"}
    assert s["phase"] == "Failed"


def test_qos_class_is_kept_from_the_api():
    s = status(pod("a"), running("a"), old={"qosClass": "Guaranteed"})
    assert s["qosClass"] == "Guaranteed"


# -- probes ---------------------------------------------------------------------------------------

PROBE = {"exec": {"command": ["true"]}}


def probed(policy: str = "Always", **fields: Any) -> dict[str, Any]:
    p = pod("a", policy=policy)
    p["spec"]["containers"][0].update(fields)
    return p


def ready_and_started(s: dict[str, Any]) -> tuple[bool, bool]:
    (cs,) = s["containerStatuses"]
    return cs["ready"], cs["started"]


def test_a_readiness_probe_keeps_a_running_container_unready_until_it_passes():
    p = probed(readinessProbe=PROBE)
    s = status(p, running("a"))
    assert ready_and_started(s) == (False, True)
    assert s["phase"] == "Running"
    assert cond(s, "Ready")["message"] == "containers with unready status: [a]"
    assert cond(s, "ContainersReady")["status"] == "False"
    s = status(p, running("a"), health={"a": Health("id-a-1", started=True, ready=True)})
    assert ready_and_started(s) == (True, True)
    assert cond(s, "Ready")["status"] == cond(s, "ContainersReady")["status"] == "True"


def test_a_failing_readiness_probe_makes_a_container_unready():
    s = status(probed(readinessProbe=PROBE), running("a"),
               health={"a": Health("id-a-1", started=True, ready=False)})
    assert ready_and_started(s) == (False, True)
    assert cond(s, "Ready")["reason"] == "ContainersNotReady"


def test_health_of_an_earlier_run_is_ignored():
    s = status(probed(readinessProbe=PROBE), running("a", runs=2),
               health={"a": Health("id-a-1", started=True, ready=True)})
    assert ready_and_started(s) == (False, True)


def test_a_startup_probe_holds_started_and_ready():
    p = probed(startupProbe=PROBE)
    assert ready_and_started(status(p, running("a"))) == (False, False)
    assert ready_and_started(status(p, running("a"), health={
        "a": Health("id-a-1", started=False, ready=True)})) == (False, False)
    assert ready_and_started(status(p, running("a"), health={
        "a": Health("id-a-1", started=True, ready=True)})) == (True, True)


def test_without_probes_a_running_container_is_ready_with_empty_health():
    assert ready_and_started(status(pod("a"), running("a"), health={})) == (True, True)


def test_a_sidecar_must_have_started_before_the_next_init_container():
    p = pod("main", init=[{"name": "side", "restartPolicy": "Always", "startupProbe": PROBE},
                          {"name": "i2"}])
    side = running("side")
    assert plan(p, side, health={}) == Plan()
    assert plan(p, side, health={"side": Health("id-side-1", started=False)}) == Plan()
    assert plan(p, side, health={"side": Health("id-side-1", started=True)}) == Plan(
        start=("i2",))
    s = status(p, side, health={"side": Health("id-side-1", started=False, ready=False)})
    assert s["initContainerStatuses"][0]["started"] is False
    assert s["phase"] == "Pending"


@pytest.mark.parametrize(("policy", "start"), [
    ("Always", ("a",)), ("OnFailure", ("a",)), ("Never", ()),
])
def test_a_run_killed_by_its_liveness_probe_is_restarted_unless_never(policy, start):
    rec = st.killed_by_probe(running("a"), "liveness")
    assert rec.current is not None and rec.current.killed_by == "liveness"
    rec = st.exited(rec, 0, T0 + 5)  # the program ended cleanly on SIGTERM
    assert rec.current is not None and rec.current.killed_by == "liveness"
    assert plan(probed(policy, livenessProbe=PROBE), rec).start == start
    assert status(probed(policy, livenessProbe=PROBE), rec)["phase"] == (
        "Succeeded" if policy == "Never" else "Running")


def test_killed_by_probe_leaves_a_finished_run_alone():
    rec = exited("a", 1)
    assert st.killed_by_probe(rec, "liveness") == rec
