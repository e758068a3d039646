"""Container probes: parsing the spec, the request and outcomes, and kubelet's state machine."""

from __future__ import annotations

from typing import Any

import pytest

from podnet.runtime import probes as pr
from podnet.runtime.probes import (
    FAILURE,
    LIVENESS,
    READINESS,
    STARTUP,
    SUCCESS,
    UNKNOWN,
    EventBudget,
    Exec,
    HttpGet,
    Outcome,
    Probe,
    TcpSocket,
    Tracker,
    Unsupported,
)
from podnet.runtime.status import Health

POD_IP = "10.244.1.5"


def ctr(**fields: Any) -> dict[str, Any]:
    return {"name": "web", "image": "x",
            "ports": [{"name": "http", "containerPort": 8080}, {"name": "admin",
                                                                "containerPort": 9000}],
            **fields}


# -- parsing ------------------------------------------------------------------------------------

def test_a_container_without_probes_has_none():
    assert pr.container_probes(ctr(), POD_IP) == {}
    assert pr.parse(ctr(), READINESS, POD_IP) is None


def test_defaults_as_the_api_server_sets_them():
    probe = pr.parse(ctr(readinessProbe={"tcpSocket": {"port": 8080}}), READINESS, POD_IP)
    assert probe == Probe(READINESS, TcpSocket(POD_IP, 8080), initial_delay=0, period=10,
                          timeout=1, success_threshold=1, failure_threshold=3, grace=None)


def test_timing_fields_are_read():
    spec = {"exec": {"command": ["true"]}, "initialDelaySeconds": 5, "periodSeconds": 2,
            "timeoutSeconds": 3, "successThreshold": 4, "failureThreshold": 6}
    probe = pr.parse(ctr(readinessProbe=spec), READINESS, POD_IP)
    assert probe is not None
    assert (probe.initial_delay, probe.period, probe.timeout, probe.success_threshold,
            probe.failure_threshold) == (5, 2, 3, 4, 6)


def test_liveness_success_threshold_is_always_one_and_its_grace_is_kept():
    spec = {"exec": {"command": ["true"]}, "successThreshold": 3,
            "terminationGracePeriodSeconds": 7}
    probe = pr.parse(ctr(livenessProbe=spec), LIVENESS, POD_IP)
    assert probe is not None and probe.success_threshold == 1 and probe.grace == 7


def test_http_get_with_a_named_port_headers_and_https():
    spec = {"httpGet": {"path": "/healthz", "port": "admin", "scheme": "HTTPS",
                        "httpHeaders": [{"name": "x-custom-header", "value": "a"}]}}
    probe = pr.parse(ctr(livenessProbe=spec), LIVENESS, POD_IP)
    assert probe is not None
    assert probe.action == HttpGet("https", POD_IP, 9000, "/healthz",
                                   (("X-Custom-Header", "a"),))
    assert probe.action.url == "https://10.244.1.5:9000/healthz"


def test_http_get_host_and_defaults():
    spec = {"httpGet": {"port": 8080, "host": "10.0.0.9"}}
    probe = pr.parse(ctr(readinessProbe=spec), READINESS, POD_IP)
    assert probe is not None and probe.action == HttpGet("http", "10.0.0.9", 8080, "/")


@pytest.mark.parametrize(("port", "action"), [
    pytest.param("http", TcpSocket(POD_IP, 8080), id="name"),
    pytest.param("8081", TcpSocket(POD_IP, 8081), id="number-as-string"),
    pytest.param(8082, TcpSocket(POD_IP, 8082), id="number"),
    pytest.param("nope", Unsupported('strconv.Atoi: parsing "nope": invalid syntax'),
                 id="unknown-name"),
    pytest.param(0, Unsupported("invalid port number: 0"), id="zero"),
    pytest.param(70000, Unsupported("invalid port number: 70000"), id="too-big"),
])
def test_ports(port, action):
    probe = pr.parse(ctr(readinessProbe={"tcpSocket": {"port": port}}), READINESS, POD_IP)
    assert probe is not None and probe.action == action


def test_exec_command_expands_literal_env_only():
    c = ctr(env=[{"name": "DIR", "value": "/data"},
                 {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            readinessProbe={"exec": {"command": ["test", "-f", "$(DIR)/ok", "$(IP)", "$$(DIR)"]}})
    probe = pr.parse(c, READINESS, POD_IP)
    assert probe is not None
    assert probe.action == Exec(("test", "-f", "/data/ok", "$(IP)", "$(DIR)"))


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param({"grpc": {"port": 9000}}, "gRPC probes are not supported by podnet", id="grpc"),
    pytest.param({"exec": {"command": []}}, "exec probe has no command", id="empty-exec"),
    pytest.param({}, "missing probe handler", id="no-handler"),
])
def test_unsupported_probes(spec, message):
    probe = pr.parse(ctr(startupProbe=spec), STARTUP, POD_IP)
    assert probe is not None and probe.action == Unsupported(message)


def test_all_three_kinds():
    c = ctr(startupProbe={"exec": {"command": ["a"]}}, livenessProbe={"exec": {"command": ["b"]}},
            readinessProbe={"exec": {"command": ["c"]}})
    assert list(pr.container_probes(c, POD_IP)) == [STARTUP, LIVENESS, READINESS]


# -- the HTTP request ---------------------------------------------------------------------------

def test_http_request_as_kubelet_sends_it():
    action = HttpGet("http", POD_IP, 8080, "/ready?x=1", (("X-Probe", "yes"), ("X-Probe", "2")))
    assert action.request() == (
        b"GET /ready?x=1 HTTP/1.1\r\nHost: 10.244.1.5:8080\r\nUser-Agent: kube-probe/1.37\r\n"
        b"Accept: */*\r\nX-Probe: yes\r\nX-Probe: 2\r\nConnection: close\r\n\r\n")


def test_http_request_host_user_agent_and_empty_accept_override_the_defaults():
    action = HttpGet("http", POD_IP, 80, "/", (("Host", "example.com"), ("User-Agent", "me"),
                                               ("Accept", "")))
    assert action.request() == (b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: me\r\n"
                                b"Connection: close\r\n\r\n")


def test_ipv6_hosts_are_bracketed():
    assert HttpGet("http", "fd00::5", 80, "/x").url == "http://[fd00::5]:80/x"
    assert TcpSocket("fd00::5", 80).hostport == "[fd00::5]:80"


@pytest.mark.parametrize(("name", "canonical"), [
    ("x-custom-header", "X-Custom-Header"), ("HOST", "Host"), ("user-agent", "User-Agent"),
    ("accept", "Accept"),
])
def test_canonical_header(name, canonical):
    assert pr.canonical_header(name) == canonical


def test_path_gets_a_leading_slash():
    probe = pr.parse(ctr(readinessProbe={"httpGet": {"port": 80, "path": "healthz"}}),
                     READINESS, POD_IP)
    assert probe is not None and isinstance(probe.action, HttpGet)
    assert probe.action.path == "/healthz"


# -- outcomes -----------------------------------------------------------------------------------

URL = "http://10.244.1.5:8080/"


@pytest.mark.parametrize(("line", "outcome"), [
    pytest.param(b"HTTP/1.1 200 OK\r\n", Outcome(SUCCESS), id="200"),
    pytest.param(b"HTTP/1.0 204 No Content\r\n", Outcome(SUCCESS), id="204"),
    pytest.param(b"HTTP/1.1 302 Found\r\n", Outcome(SUCCESS), id="302"),
    pytest.param(b"HTTP/1.1 399 Whatever\r\n", Outcome(SUCCESS), id="399"),
    pytest.param(b"HTTP/1.1 400 Bad Request\r\n",
                 Outcome(FAILURE, "HTTP probe failed with statuscode: 400"), id="400"),
    pytest.param(b"HTTP/1.1 503 Service Unavailable\r\n",
                 Outcome(FAILURE, "HTTP probe failed with statuscode: 503"), id="503"),
    pytest.param(b"HTTP/1.1 199\r\n", Outcome(FAILURE, "HTTP probe failed with statuscode: 199"),
                 id="199"),
    pytest.param(b"", Outcome(FAILURE, f'Get "{URL}": EOF'), id="eof"),
    pytest.param(b"SSH-2.0-OpenSSH\r\n", Outcome(
        FAILURE, f'Get "{URL}": net/http: HTTP/1.x transport connection broken: malformed HTTP '
        'response "SSH-2.0-OpenSSH"'), id="not-http"),
])
def test_http_outcome(line, outcome):
    assert pr.http_outcome(line, URL) == outcome


def test_network_failure_texts_read_as_go_writes_them():
    assert pr.dial_failure("10.0.0.1:81", pr.go_errno_text("Connection refused")) == (
        "dial tcp 10.0.0.1:81: connect: connection refused")
    assert pr.dial_timeout("10.0.0.1:81") == "dial tcp 10.0.0.1:81: i/o timeout"
    assert pr.http_timeout(URL) == (f'Get "{URL}": context deadline exceeded '
                                    "(Client.Timeout exceeded while awaiting headers)")


def test_exec_outcomes():
    assert pr.exec_outcome(0, b"fine\n") == Outcome(SUCCESS, "fine\n")
    assert pr.exec_outcome(1, b"") == Outcome(FAILURE, "")
    assert pr.exec_outcome(2, b"x" * 20000).output == "x" * 10240
    assert pr.exec_timeout(("sleep", "5")) == Outcome(FAILURE, 'command "sleep 5" timed out')


def test_failed_and_errored_outcomes():
    assert not Outcome(SUCCESS).failed
    assert Outcome(FAILURE).failed
    assert pr.errored("boom") == Outcome(UNKNOWN, "", "boom") and pr.errored("boom").failed


# -- the state machine --------------------------------------------------------------------------

OK, BAD = Outcome(SUCCESS), Outcome(FAILURE, "no")


def fold(kind: str, outcomes: list[Outcome], **timing: Any) -> list[str]:
    """The reported result after each attempt."""
    probe = Probe(kind, Exec(("x",)), **timing)
    t = pr.tracker(kind)
    seen = []
    for o in outcomes:
        t = pr.observe(t, probe, o)
        seen.append(t.result)
    return seen


def test_initial_results():
    assert pr.tracker(READINESS).result == FAILURE
    assert pr.tracker(LIVENESS).result == SUCCESS
    assert pr.tracker(STARTUP).result == UNKNOWN
    assert pr.tracker(READINESS, SUCCESS).result == SUCCESS  # remembered across a restart
    assert pr.tracker(READINESS, "bogus").result == FAILURE


@pytest.mark.parametrize(("kind", "timing", "outcomes", "results"), [
    pytest.param(READINESS, {}, [OK], [SUCCESS], id="readiness-one-success"),
    pytest.param(READINESS, {"success_threshold": 3}, [OK, OK, OK],
                 [FAILURE, FAILURE, SUCCESS], id="readiness-success-threshold"),
    pytest.param(READINESS, {"success_threshold": 2}, [OK, BAD, OK, OK],
                 [FAILURE, FAILURE, FAILURE, SUCCESS], id="success-streak-broken"),
    pytest.param(READINESS, {"failure_threshold": 3}, [OK, BAD, BAD, BAD, OK],
                 [SUCCESS, SUCCESS, SUCCESS, FAILURE, SUCCESS], id="readiness-failure-threshold"),
    pytest.param(READINESS, {"failure_threshold": 2}, [OK, BAD, OK, BAD, OK],
                 [SUCCESS] * 5, id="failures-not-in-a-row"),
    pytest.param(LIVENESS, {"failure_threshold": 2}, [BAD, BAD],
                 [SUCCESS, FAILURE], id="liveness-fails"),
    pytest.param(STARTUP, {"failure_threshold": 2}, [BAD, OK], [UNKNOWN, SUCCESS],
                 id="startup-succeeds"),
    pytest.param(STARTUP, {"failure_threshold": 1}, [BAD, OK], [FAILURE, FAILURE],
                 id="startup-fails-and-holds"),
])
def test_thresholds(kind, timing, outcomes, results):
    assert fold(kind, outcomes, **timing) == results


def test_errored_attempts_are_thrown_away():
    probe = Probe(READINESS, Exec(("x",)), success_threshold=2)
    t = pr.observe(pr.tracker(READINESS), probe, OK)
    t2 = pr.observe(t, probe, pr.errored("cannot run"))
    assert t2 == t == Tracker(READINESS, FAILURE, SUCCESS, 1)
    assert pr.observe(t2, probe, OK).result == SUCCESS


def test_a_failed_liveness_probe_holds_until_a_new_run():
    probe = Probe(LIVENESS, Exec(("x",)), failure_threshold=1)
    t = pr.observe(pr.tracker(LIVENESS), probe, BAD)
    assert t == Tracker(LIVENESS, FAILURE, FAILURE, 0, on_hold=True)
    assert pr.observe(t, probe, OK) == t


def test_readiness_never_holds():
    probe = Probe(READINESS, Exec(("x",)), failure_threshold=1)
    t = pr.observe(pr.tracker(READINESS), probe, BAD)
    assert not t.on_hold


@pytest.mark.parametrize(("kind", "started", "runs"), [
    (STARTUP, False, True), (STARTUP, True, False),
    (LIVENESS, False, False), (LIVENESS, True, True),
    (READINESS, False, False), (READINESS, True, True),
])
def test_which_probes_run(kind, started, runs):
    assert pr.runs_now(kind, started) is runs


def test_attempts_wait_for_the_initial_delay_then_come_every_period():
    probe = Probe(READINESS, Exec(("x",)), initial_delay=3, period=2)
    assert pr.next_attempt(probe, 100.0, None) == 103.0
    assert pr.next_attempt(probe, 100.0, 103.0) == 105.0
    assert pr.next_attempt(probe, 100.0, 90.0) == 103.0  # an early attempt (after a restart)
    assert pr.next_attempt(Probe(LIVENESS, Exec(("x",))), 100.0, None) == 100.0


# -- health -------------------------------------------------------------------------------------

def t(kind: str, result: str) -> Tracker:
    return Tracker(kind, result)


READY_SPEC = {"exec": {"command": ["x"]}}


@pytest.mark.parametrize(("fields", "trackers", "started", "ready"), [
    pytest.param({}, {}, True, True, id="no-probes"),
    pytest.param({"readinessProbe": READY_SPEC}, {}, True, False, id="readiness-not-run"),
    pytest.param({"readinessProbe": READY_SPEC}, {READINESS: t(READINESS, SUCCESS)}, True, True,
                 id="readiness-passed"),
    pytest.param({"startupProbe": READY_SPEC}, {STARTUP: t(STARTUP, UNKNOWN)}, False, False,
                 id="startup-pending"),
    pytest.param({"startupProbe": READY_SPEC}, {STARTUP: t(STARTUP, SUCCESS)}, True, True,
                 id="startup-passed"),
    pytest.param({"startupProbe": READY_SPEC, "readinessProbe": READY_SPEC},
                 {STARTUP: t(STARTUP, UNKNOWN), READINESS: t(READINESS, SUCCESS)}, False, False,
                 id="ready-only-once-started"),
    pytest.param({"livenessProbe": READY_SPEC}, {LIVENESS: t(LIVENESS, FAILURE)}, True, True,
                 id="liveness-does-not-touch-readiness"),
])
def test_health(fields, trackers, started, ready):
    assert pr.health(ctr(**fields), "id-1", trackers) == Health("id-1", started=started,
                                                                 ready=ready)


def test_which_failure_kills():
    assert pr.failed({READINESS: t(READINESS, FAILURE)}) is None
    assert pr.failed({LIVENESS: t(LIVENESS, SUCCESS)}) is None
    assert pr.failed({LIVENESS: t(LIVENESS, FAILURE)}) == LIVENESS
    assert pr.failed({STARTUP: t(STARTUP, FAILURE)}) == STARTUP


# -- words and the event budget -----------------------------------------------------------------

def test_messages():
    assert pr.unhealthy_message(READINESS, Outcome(FAILURE, "HTTP probe failed with statuscode: "
                                                   "500")) == (
        "Readiness probe failed: HTTP probe failed with statuscode: 500")
    assert pr.unhealthy_message(LIVENESS, pr.errored("no such port")) == (
        "Liveness probe errored: no such port")
    assert pr.kill_message("web", LIVENESS, restart=True) == (
        "Container web failed liveness probe, will be restarted")
    assert pr.kill_message("web", STARTUP, restart=False) == "Container web failed startup probe"


def test_event_budget_is_a_burst_of_25_then_one_per_5_minutes():
    budget = EventBudget()
    allowed = []
    for i in range(30):
        ok, budget = pr.spend(budget, 1000.0 + i)
        allowed.append(ok)
    assert allowed == [True] * 25 + [False] * 5
    ok, budget = pr.spend(budget, 1029.0 + 200)
    assert not ok
    ok, budget = pr.spend(budget, 1029.0 + 301)
    assert ok
    ok, budget = pr.spend(budget, 1029.0 + 302)
    assert not ok
