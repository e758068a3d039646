"""Container probes as kubelet runs them (pure).

A container may have three probes: `startupProbe`, `livenessProbe` and `readinessProbe`. Each
one is an action (httpGet, tcpSocket or exec; gRPC is not supported) and its timing fields.
This module turns the spec into `Probe` values, describes what performing one means (the HTTP
request bytes, how an answer or an exit status becomes an `Outcome`), and keeps kubelet's
per-probe state machine, a `Tracker`, for one run of a container:

- the results manager starts at Failure for readiness, Success for liveness and Unknown for
  startup;
- nothing is probed before `initialDelaySeconds` have passed since the container started, then
  once every `periodSeconds`; a probe that takes longer than `timeoutSeconds` fails;
- liveness and readiness wait until the container has started (its startup probe succeeded,
  or it has none); the startup probe stops once it has;
- the result only changes after `successThreshold` successes or `failureThreshold` failures in
  a row; a probe that could not be run at all ("errored") is thrown away;
- a liveness or startup probe that fails puts the tracker on hold: the container is killed and
  restarted (unless the pod's restartPolicy is Never), and a new run gets new trackers.

`health()` sums a container's trackers up as `podnet.runtime.status.Health` (started, ready),
which the pod status reports. The shell that performs probes is podnet.runtime.prober; nothing
here does I/O or reads the clock.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from podnet.runtime.status import Health

STARTUP = "startup"
LIVENESS = "liveness"
READINESS = "readiness"
KINDS = (STARTUP, LIVENESS, READINESS)
SPEC_FIELD = {STARTUP: "startupProbe", LIVENESS: "livenessProbe", READINESS: "readinessProbe"}
TITLE = {STARTUP: "Startup", LIVENESS: "Liveness", READINESS: "Readiness"}

SUCCESS = "Success"
FAILURE = "Failure"
UNKNOWN = "Unknown"
INITIAL = {READINESS: FAILURE, LIVENESS: SUCCESS, STARTUP: UNKNOWN}

USER_AGENT = "kube-probe/1.37"
MAX_OUTPUT = 10 * 1024        # kubelet keeps at most 10 KiB of an exec probe's output

Obj = Mapping[str, Any]


class ProbeError(ValueError):
    """The probe cannot be performed as written (kubelet: the probe "errored")."""


# -- actions ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HttpGet:
    scheme: str                               # "http" or "https"
    host: str                                 # where to connect: the pod IP unless set
    port: int
    path: str                                 # the request target, starting with "/"
    headers: tuple[tuple[str, str], ...] = ()  # httpHeaders, names canonical, in order
    user_agent: str = USER_AGENT              # kubelet's: kube-probe, or kube-lifecycle for hooks

    @property
    def hostport(self) -> str:
        return join_host_port(self.host, self.port)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.hostport}{self.path}"

    def request(self) -> bytes:
        """The GET request kubelet's prober sends: HTTP/1.1, no keep-alive. httpHeaders add to
        the request; a Host header replaces the host, a User-Agent header kubelet's own, and
        an empty Accept header drops the default one."""
        given: dict[str, list[str]] = {}
        for name, value in self.headers:
            given.setdefault(name, []).append(value)
        host = (given.pop("Host", None) or [self.hostport])[0] or self.hostport
        user_agent = (given.pop("User-Agent", None) or [self.user_agent])[0]
        accept = given.get("Accept")
        if accept is None:
            given["Accept"] = ["*/*"]
        elif not accept[0]:
            del given["Accept"]
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {host}"]
        if user_agent:
            lines.append(f"User-Agent: {user_agent}")
        lines += [f"{name}: {value}" for name in sorted(given) for value in given[name]]
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


@dataclass(frozen=True)
class TcpSocket:
    host: str
    port: int

    @property
    def hostport(self) -> str:
        return join_host_port(self.host, self.port)


@dataclass(frozen=True)
class Exec:
    command: tuple[str, ...]


@dataclass(frozen=True)
class Unsupported:
    """A probe podnet cannot perform (gRPC), or one whose port does not resolve: each attempt
    errors, and kubelet throws errored results away."""

    message: str


Action = HttpGet | TcpSocket | Exec | Unsupported


@dataclass(frozen=True)
class Probe:
    kind: str
    action: Action
    initial_delay: int = 0
    period: int = 10
    timeout: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    grace: int | None = None          # terminationGracePeriodSeconds for a liveness kill


def join_host_port(host: str, port: int) -> str:
    """Go's net.JoinHostPort: IPv6 addresses in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def canonical_header(name: str) -> str:
    """Go's canonical MIME header key: x-custom-header -> X-Custom-Header."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _int(value: object, default: int) -> int:
    """A timing field: the API's default when unset or 0 (as the API server defaults it)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return default
    return value


def resolve_port(value: object, container: Obj) -> int:
    """A probe's port: a number, or the name of one of the container's ports (or a number
    written as a string). Raises ProbeError as kubelet words it."""
    port: int
    if isinstance(value, bool) or value is None:
        raise ProbeError(f"intOrString had no kind: {value!r}")
    if isinstance(value, int):
        port = value
    else:
        text = str(value)
        named = [p.get("containerPort") for p in container.get("ports") or []
                 if isinstance(p, Mapping) and p.get("name") == text]
        if named and isinstance(named[0], int):
            port = named[0]
        else:
            try:
                port = int(text, 10)
            except ValueError:
                raise ProbeError(f'strconv.Atoi: parsing "{text}": invalid syntax') from None
    if not 0 < port < 65536:
        raise ProbeError(f"invalid port number: {port}")
    return port


def _path(raw: object) -> str:
    path = str(raw or "/")
    if not path.startswith("/"):
        path = "/" + path
    return path.replace(" ", "%20")


def http_get_action(http: Obj, container: Obj, pod_ip: str, *,
                    user_agent: str = USER_AGENT) -> HttpGet:
    """An httpGet handler (a probe's or a lifecycle hook's) as a request to make. Raises
    ProbeError when its port does not resolve."""
    scheme = str(http.get("scheme") or "HTTP").lower()
    headers = tuple((canonical_header(str(h.get("name", ""))), str(h.get("value", "")))
                    for h in http.get("httpHeaders") or [] if isinstance(h, Mapping))
    return HttpGet(scheme, str(http.get("host") or pod_ip),
                   resolve_port(http.get("port"), container), _path(http.get("path")), headers,
                   user_agent)


def _action(spec: Obj, container: Obj, pod_ip: str, env: Mapping[str, str]) -> Action:
    http = spec.get("httpGet")
    tcp = spec.get("tcpSocket")
    ex = spec.get("exec")
    try:
        if isinstance(http, Mapping):
            return http_get_action(http, container, pod_ip)
        if isinstance(tcp, Mapping):
            return TcpSocket(str(tcp.get("host") or pod_ip),
                             resolve_port(tcp.get("port"), container))
    except ProbeError as e:
        return Unsupported(str(e))
    if isinstance(ex, Mapping):
        command = [str(a) for a in ex.get("command") or []]
        if not command:
            return Unsupported("exec probe has no command")
        return Exec(tuple(expand_static(a, env) for a in command))
    if isinstance(spec.get("grpc"), Mapping):
        return Unsupported("gRPC probes are not supported by podnet")
    return Unsupported("missing probe handler")


def static_env(container: Obj) -> dict[str, str]:
    """The container's env entries that have a literal value (what kubelet expands an exec
    probe's command against)."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str) and \
                "valueFrom" not in item:
            env[item["name"]] = str(item.get("value") or "")
    return env


def expand_static(text: str, env: Mapping[str, str]) -> str:
    """$(VAR) with VAR's literal value, $$ as $; unknown references stay as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and text.find(")", i + 2) > 0:
            end = text.find(")", i + 2)
            name = text[i + 2:end]
            out.append(env.get(name, f"$({name})"))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse(container: Obj, kind: str, pod_ip: str) -> Probe | None:
    """The container's probe of `kind`, or None when it has none."""
    spec = container.get(SPEC_FIELD[kind])
    if not isinstance(spec, Mapping):
        return None
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, bool) or not isinstance(grace, int) or grace <= 0:
        grace = None
    return Probe(
        kind=kind, action=_action(spec, container, pod_ip, static_env(container)),
        initial_delay=_int(spec.get("initialDelaySeconds"), 0),
        period=_int(spec.get("periodSeconds"), 10), timeout=_int(spec.get("timeoutSeconds"), 1),
        success_threshold=1 if kind != READINESS else _int(spec.get("successThreshold"), 1),
        failure_threshold=_int(spec.get("failureThreshold"), 3), grace=grace)


def container_probes(container: Obj, pod_ip: str) -> dict[str, Probe]:
    """Every probe the container has, by kind."""
    out: dict[str, Probe] = {}
    for kind in KINDS:
        probe = parse(container, kind, pod_ip)
        if probe is not None:
            out[kind] = probe
    return out


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# -- outcomes -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: Success or Failure with kubelet's output text, or an error (the
    probe could not be run), which the state machine ignores."""

    result: str
    output: str = ""
    error: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error) or self.result != SUCCESS


def errored(message: str) -> Outcome:
    return Outcome(UNKNOWN, error=message)


def http_outcome(status_line: bytes, url: str) -> Outcome:
    """The outcome of an HTTP probe from the response's status line: 200 <= code < 400 is a
    success (redirects are not followed)."""
    text = status_line.decode("latin-1").rstrip("\r\n")
    parts = text.split(" ", 2)
    if not text:
        return Outcome(FAILURE, f'Get "{url}": EOF')
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit() or \
            len(parts[1]) != 3:
        return Outcome(FAILURE, f'Get "{url}": net/http: HTTP/1.x transport connection broken: '
                       f'malformed HTTP response {json.dumps(text[:64])}')
    code = int(parts[1])
    if 200 <= code < 400:
        return Outcome(SUCCESS)
    return Outcome(FAILURE, f"HTTP probe failed with statuscode: {code}")


def go_errno_text(strerror: str) -> str:
    """An errno's text as Go prints it (lower case first letter: "connection refused")."""
    return strerror[:1].lower() + strerror[1:] if strerror else "unknown error"


def dial_failure(hostport: str, reason: str) -> str:
    """Go's net.Dial error text for a TCP connect that failed with `reason`."""
    return f"dial tcp {hostport}: connect: {reason}"


def dial_timeout(hostport: str) -> str:
    return f"dial tcp {hostport}: i/o timeout"


def http_timeout(url: str) -> str:
    return (f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting '
            "headers)")


def exec_outcome(exit_code: int, output: bytes) -> Outcome:
    """An exec probe that ran: exit status 0 is a success; the output (combined stdout and
    stderr, at most 10 KiB) is what the event shows."""
    text = output[:MAX_OUTPUT].decode(errors="replace")
    return Outcome(SUCCESS if exit_code == 0 else FAILURE, text)


def exec_timeout(command: tuple[str, ...]) -> Outcome:
    """An exec probe that ran out of time fails (kubelet's ExecProbeTimeout)."""
    return Outcome(FAILURE, f"command {json.dumps(' '.join(command))} timed out")


# -- the state machine --------------------------------------------------------------------------

@dataclass(frozen=True)
class Tracker:
    """kubelet's probe worker for one probe of one container run."""

    kind: str
    result: str                 # what the results manager holds: what status reports
    last: str = UNKNOWN         # the last attempt's result
    streak: int = 0             # how many attempts in a row gave `last`
    on_hold: bool = False       # a liveness/startup failure: no more probing for this run


def tracker(kind: str, result: str | None = None) -> Tracker:
    """A new run's tracker, at kubelet's initial value unless `result` (remembered from before
    an agent restart) is given."""
    return Tracker(kind, result if result in (SUCCESS, FAILURE, UNKNOWN) else INITIAL[kind])


def observe(t: Tracker, probe: Probe, outcome: Outcome) -> Tracker:
    """Fold one attempt into the tracker."""
    if t.on_hold or outcome.error:
        return t
    result = outcome.result if outcome.result == SUCCESS else FAILURE
    streak = t.streak + 1 if result == t.last else 1
    below = (result == FAILURE and streak < probe.failure_threshold) or (
        result == SUCCESS and streak < probe.success_threshold)
    if below:
        return replace(t, last=result, streak=streak)
    if result == FAILURE and t.kind in (LIVENESS, STARTUP):
        return Tracker(t.kind, FAILURE, result, 0, on_hold=True)
    return Tracker(t.kind, result, result, streak)


def runs_now(kind: str, started: bool) -> bool:
    """Liveness and readiness wait for the container to have started; startup stops then."""
    return not started if kind == STARTUP else started


def next_attempt(probe: Probe, started_at: float, last_at: float | None) -> float:
    """When to probe next: not before initialDelaySeconds after the container started, then
    one period after the previous attempt began."""
    first = started_at + probe.initial_delay
    return first if last_at is None else max(first, last_at + probe.period)


def health(container: Obj, container_id: str, trackers: Mapping[str, Tracker]) -> Health:
    """A container run's started and ready, from its trackers: started once its startup probe
    succeeded (at once without one), ready once started and its readiness probe succeeded
    (at once without one)."""
    def result(kind: str) -> str | None:
        if not isinstance(container.get(SPEC_FIELD[kind]), Mapping):
            return None
        t = trackers.get(kind)
        return t.result if t is not None else INITIAL[kind]

    startup, readiness = result(STARTUP), result(READINESS)
    started = startup is None or startup == SUCCESS
    ready = started and (readiness is None or readiness == SUCCESS)
    return Health(container_id, started=started, ready=ready)


def failed(trackers: Mapping[str, Tracker]) -> str | None:
    """The probe whose failure means the container must be killed: liveness or startup."""
    for kind in (LIVENESS, STARTUP):
        t = trackers.get(kind)
        if t is not None and t.result == FAILURE:
            return kind
    return None


# -- words --------------------------------------------------------------------------------------

def unhealthy_message(kind: str, outcome: Outcome) -> str:
    """The Warning event kubelet records for each failed attempt (reason Unhealthy)."""
    if outcome.error:
        return f"{TITLE[kind]} probe errored: {outcome.error}"
    return f"{TITLE[kind]} probe failed: {outcome.output}"


def kill_message(container: str, kind: str, *, restart: bool) -> str:
    """The Killing event of a container that failed its liveness or startup probe."""
    message = f"Container {container} failed {kind} probe"
    return message + ", will be restarted" if restart else message


@dataclass(frozen=True)
class EventBudget:
    """kubelet's event spam filter, per pod: a burst of 25, then one every 5 minutes."""

    tokens: float = 25.0
    at: float = 0.0


BUDGET_BURST = 25.0
BUDGET_REFILL = 1.0 / 300.0


def spend(budget: EventBudget, now: float) -> tuple[bool, EventBudget]:
    """Whether one more event may be sent now, and the budget after it."""
    tokens = budget.tokens if budget.at == 0.0 else min(
        BUDGET_BURST, budget.tokens + (now - budget.at) * BUDGET_REFILL)
    if tokens < 1.0:
        return False, EventBudget(tokens, now)
    return True, EventBudget(tokens - 1.0, now)
