"""The ingress controller (the shell): watches the API, programs HAProxy, writes status.

    Reflectors: Ingress, IngressClass, Service, EndpointSlice, Secret (all namespaces)
        |  any change marks the controller dirty (one slot: a burst becomes one sync,
        |  after COALESCE seconds of collecting)
        v
    sync():  routes.build -> haproxy.render(previous=the running configuration)
        |    -> the changed files written (temporary file + rename; stale certificates removed)
        |    -> haproxy.needs_reload?
        |         no:  the Runtime API commands on the stats socket (server slots, maps,
        |              certificates): no new process, no connection touched
        |         yes: rendered again compacted, checked with `haproxy -c`, SIGUSR2 to the
        |              master; done when the new worker answers `show info` on the stats
        |              socket. The master hands the listening sockets to the new worker and
        |              the old one finishes the requests it has: nothing in flight is dropped
        v
    statuses: every Ingress of ours gets the publish Service's LoadBalancer address in
    status.loadBalancer.ingress; one that stopped being ours loses it; others are never
    written.

HAProxy runs as this process's child (`haproxy -W -f haproxy.cfg`: master-worker), in the same
pod but a session of its own, so that the pod's stop signal (sent to the container's process
group) reaches the controller only; the controller stops HAProxy softly (SIGUSR1: finish what
is in flight), and a parent-death signal (setpriv --pdeathsig) stops it should the controller
die (without setpriv, the next controller stops the master named in haproxy.pid). If its master
exits on its own, the controller exits with an error and the pod's restartPolicy starts both
again.

A failed Runtime API command or reload is logged and counted; the next sync is then a full
reload from the files, retried every RETRY seconds until one succeeds.

The default certificate (served when no Secret's certificate matches the SNI name) is a
self-signed one made at start. /healthz answers 200 once HAProxy serves the first
configuration (the pod's readiness); /metrics counts syncs, reloads, Runtime API updates and
errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from podnet.api.resources import Resource, lookup
from podnet.client.aio import AsyncClient, Reflector
from podnet.client.http import ClientError
from podnet.ingress import haproxy, routes

log = logging.getLogger("podnet.ingress")

Obj = dict[str, Any]

COALESCE = 0.015  # seconds a change waits for the rest of its burst
RETRY = 1.0  # seconds before a failed sync or status write is tried again
RELOAD_TIMEOUT = 15.0  # seconds a reload may take before it counts as failed
START_TIMEOUT = 15.0
COMMAND_TIMEOUT = 5.0  # one Runtime API command
STOP_GRACE = 5.0  # seconds HAProxy gets to finish requests in flight when stopping
CONFIG_FILE = "haproxy.cfg"
SOCKET_FILE = "admin.sock"
PID_FILE = "haproxy.pid"  # the master's, written by HAProxy (-p)
UNIX_PATH_MAX = 107  # sun_path's 108 bytes, with the terminating NUL
DEFAULT_CERT_NAME = "podnet ingress default certificate"
# Words in a Runtime API answer that mean the command failed (HAProxy answers in prose:
# "No such server.", "Version number out of range.", "Can't commit ...", "Unknown command").
_FAILURE_WORDS = ("no such", "out of range", "can't", "cannot", "unable", "unknown", "error",
                  "invalid", "failed", "not found", "missing", "require", "expects")


class IngressError(Exception):
    """HAProxy could not be started, configured or reloaded."""


# --- pure helpers ---------------------------------------------------------------------------

def default_certificate(now: datetime.datetime | None = None) -> bytes:
    """A self-signed certificate and its key as PEM (no blank line): what HAProxy serves
    when no Secret's certificate matches the SNI name."""
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(days=1)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DEFAULT_CERT_NAME)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("ingress.local")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))


def load_balancer_ips(obj: Obj | None) -> list[str]:
    """The IPs in an object's status.loadBalancer.ingress, in order."""
    status = (obj or {}).get("status")
    balancer = status.get("loadBalancer") if isinstance(status, dict) else None
    items = balancer.get("ingress") if isinstance(balancer, dict) else None
    return [str(i["ip"]) for i in items or [] if isinstance(i, dict) and i.get("ip")]


@dataclass(frozen=True)
class StatusChange:
    """The status.loadBalancer.ingress an Ingress must get: `ips` empty clears it."""

    ref: routes.IngressRef
    ips: tuple[str, ...]

    def patch(self) -> Obj:
        """A JSON merge patch for the status subresource."""
        value = [{"ip": ip} for ip in self.ips] if self.ips else None
        return {"status": {"loadBalancer": {"ingress": value}}}


def status_changes(ingresses: Iterable[Obj], ours: Collection[routes.IngressRef],
                   addresses: Sequence[str], announced: Collection[str]) -> list[StatusChange]:
    """What to write: our Ingresses get `addresses` (none known: cleared); an Ingress that is
    not ours is only written when it carries an address this controller announces or did
    (`announced`): it stopped being ours, and loses it. Ingresses being deleted are left
    alone. Sorted by namespace/name."""
    out = []
    for ingress in ingresses:
        if (ingress.get("metadata") or {}).get("deletionTimestamp"):
            continue
        ref = routes.ingress_ref(ingress)
        current = load_balancer_ips(ingress)
        if ref in ours:
            if current != list(addresses):
                out.append(StatusChange(ref, tuple(addresses)))
        elif current and set(current) & (set(announced) | set(addresses)):
            out.append(StatusChange(ref, ()))
    return sorted(out, key=lambda c: c.ref)


def reply_failed(reply: str) -> bool:
    """Whether a Runtime API answer reports a failure."""
    low = reply.lower()
    return any(word in low for word in _FAILURE_WORDS)


def parse_service_ref(text: str) -> tuple[str, str]:
    """`namespace/name` -> (namespace, name); ValueError otherwise."""
    ns, sep, name = text.partition("/")
    if not sep or not ns or not name or "/" in name:
        raise ValueError(f"{text!r}: expected NAMESPACE/NAME")
    return ns, name


# --- metrics --------------------------------------------------------------------------------

@dataclass
class Metrics:
    syncs: int = 0
    reloads: int = 0
    runtime_updates: int = 0  # syncs applied through the Runtime API alone
    runtime_commands: int = 0
    errors: int = 0
    status_writes: int = 0
    ingresses: int = 0  # ours, in the last sync
    backends: int = 0
    last_sync_seconds: float = 0.0

    def text(self) -> str:
        """Prometheus' text format."""
        rows = [
            ("syncs_total", "counter", "Syncs of HAProxy with the API objects.", self.syncs),
            ("reloads_total", "counter", "HAProxy reloads (SIGUSR2 to the master).",
             self.reloads),
            ("runtime_updates_total", "counter",
             "Syncs applied through the Runtime API alone, without a reload.",
             self.runtime_updates),
            ("runtime_commands_total", "counter", "Runtime API commands sent.",
             self.runtime_commands),
            ("errors_total", "counter", "Failed syncs, reloads, commands and status writes.",
             self.errors),
            ("status_writes_total", "counter", "Ingress status updates written.",
             self.status_writes),
            ("ingresses", "gauge", "Ingresses of this controller's classes.", self.ingresses),
            ("backends", "gauge", "Service ports the routes use.", self.backends),
            ("last_sync_seconds", "gauge", "How long the last sync took.",
             self.last_sync_seconds),
        ]
        out = []
        for name, kind, help_text, value in rows:
            full = f"podnet_ingress_{name}"
            out += [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}", f"{full} {value:g}"]
        return "\n".join(out) + "\n"


# --- files ----------------------------------------------------------------------------------

def write_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` atomically (temporary file + rename). No fsync: every file here is
    rendered again from the API at start, so a crash loses nothing."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@dataclass
class ConfigFiles:
    """The configuration's files in `directory`, written only when they changed."""

    directory: Path
    written: dict[str, bytes] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.directory / CONFIG_FILE

    def write(self, config: haproxy.Config) -> int:
        """Write what changed (haproxy.cfg last); remove certificate files no longer used.
        Returns the number of files written."""
        (self.directory / haproxy.CERT_DIR).mkdir(parents=True, exist_ok=True)
        wanted = {**config.files, CONFIG_FILE: config.text.encode()}
        count = 0
        for name in sorted(wanted, key=lambda n: n == CONFIG_FILE):
            if self.written.get(name) != wanted[name]:
                write_file(self.directory / name, wanted[name])
                self.written[name] = wanted[name]
                count += 1
        for path in (self.directory / haproxy.CERT_DIR).iterdir():
            name = f"{haproxy.CERT_DIR}/{path.name}"
            if name not in wanted:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                self.written.pop(name, None)
        return count


# --- HAProxy --------------------------------------------------------------------------------

class HAProxy:
    """The HAProxy master process (master-worker mode) and its Runtime API."""

    def __init__(self, binary: str, config: Path, socket: Path) -> None:
        self.binary = binary
        self.config = config
        self.socket = socket
        self.proc: asyncio.subprocess.Process | None = None
        self.worker = ""  # the serving worker's pid, as `show info` says it

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def check(self) -> None:
        """`haproxy -c`: IngressError with HAProxy's words when the configuration is bad."""
        proc = await asyncio.create_subprocess_exec(
            self.binary, "-c", "-q", "-f", str(self.config), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise IngressError(f"haproxy -c refused {self.config}: "
                               f"{out.decode(errors='replace').strip()}")

    @property
    def pid_file(self) -> Path:
        return self.config.with_name(PID_FILE)

    async def stop_leftover(self) -> None:
        """A master a previous controller left running (it died where no parent-death signal
        could reach it): it would share the ports (SO_REUSEPORT) with an old configuration."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return
        if str(self.config).encode() not in args:
            return  # the pid is someone else's now
        log.warning("stopping haproxy %d, left by a previous controller", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                return
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    async def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the master; return once its worker answers on the stats socket."""
        await self.stop_leftover()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()  # a previous run's: `show info` must not hit a stale one
        # A session of its own: a pod's stop signals the container's process group, and
        # HAProxy must get the soft stop from the controller, not SIGTERM (which drops what
        # is in flight). Should the controller die, the parent-death signal stops it.
        argv = [self.binary, "-W", "-f", str(self.config), "-p", str(self.pid_file)]
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            argv = [setpriv, "--pdeathsig", "TERM", "--", *argv]
        self.proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        log.info("haproxy master started (pid %d)", self.proc.pid)
        self.worker = await self._wait_worker("", timeout)

    async def _wait_worker(self, old: str, timeout: float) -> str:
        """Poll `show info` until a worker other than `old` answers; its pid."""
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            if not self.running:
                raise IngressError(f"haproxy exited (status {self.returncode()})")
            with contextlib.suppress(OSError, IngressError, TimeoutError):
                pid = info_pid(await self.command("show info\n"))
                if pid and pid != old:
                    return pid
            if time.monotonic() >= deadline:
                raise IngressError(f"no new haproxy worker within {timeout:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    async def reload(self, timeout: float = RELOAD_TIMEOUT) -> None:
        """SIGUSR2 to the master; return once the new worker serves."""
        assert self.proc is not None
        old = self.worker
        self.proc.send_signal(signal.SIGUSR2)
        self.worker = await self._wait_worker(old, timeout)

    async def command(self, text: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Send one command (payload included) on a new connection; the whole answer."""
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(str(self.socket))
            try:
                writer.write(text.encode())
                await writer.drain()
                return (await reader.read()).decode(errors="replace")
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def run_ops(self, ops: Sequence[haproxy.RuntimeOp]) -> int:
        """Apply Runtime API operations in order; IngressError at the first that fails.
        Returns the number of commands sent."""
        sent = 0
        for op in ops:
            if isinstance(op, haproxy.Command):
                await self._checked(op.text)
                sent += 1
                continue
            reply = await self._checked(op.prepare().text)
            version = haproxy.parse_version(reply)
            commands = [c.text for c in op.fill(version)] + [op.commit(version).text]
            for text in commands:
                await self._checked(text)
            sent += 1 + len(commands)
        return sent

    async def _checked(self, text: str) -> str:
        try:
            reply = await self.command(text)
        except (OSError, TimeoutError) as e:
            raise IngressError(f"runtime API {first_line(text)!r}: {e}") from e
        if reply_failed(reply):
            raise IngressError(f"runtime API {first_line(text)!r}: {reply.strip()}")
        return reply

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Soft stop (SIGUSR1: the workers finish what they have), then SIGTERM, then
        SIGKILL."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        for sig, wait in ((signal.SIGUSR1, grace), (signal.SIGTERM, 2.0),
                          (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                await asyncio.wait_for(proc.wait(), wait)
                break
            except TimeoutError:
                continue
        log.info("haproxy stopped (status %s)", proc.returncode)


def info_pid(reply: str) -> str:
    """The `Pid:` line of `show info`."""
    for line in reply.splitlines():
        if line.startswith("Pid:"):
            return line.split(":", 1)[1].strip()
    return ""


def first_line(text: str) -> str:
    return text.split("\n", 1)[0]


# --- the controller -------------------------------------------------------------------------

def _res(name: str) -> Resource:
    r = lookup(name)
    assert r is not None, name
    return r


@dataclass(frozen=True)
class Options:
    state_dir: Path
    publish_service: tuple[str, str] | None = None
    class_name: str = routes.CLASS_NAME
    controller: str = routes.CONTROLLER
    http_port: int = 80
    https_port: int | None = 443
    haproxy_health_port: int = 10255  # HAProxy's own monitor-uri, inside the pod
    bind_address: str = ""
    haproxy_binary: str = "haproxy"
    coalesce: float = COALESCE
    stop_grace: float = STOP_GRACE


class Controller:
    """Keeps HAProxy and the Ingresses' status in step with the API."""

    def __init__(self, client: AsyncClient, options: Options,
                 default_cert: bytes | None = None) -> None:
        self.client = client
        self.options = options
        self.metrics = Metrics()
        self.files = ConfigFiles(options.state_dir)
        socket = options.state_dir / SOCKET_FILE
        if len(str(socket).encode()) > UNIX_PATH_MAX:
            raise IngressError(f"the stats socket path {socket} is longer than "
                               f"{UNIX_PATH_MAX} bytes: use a shorter --state-dir")
        self.haproxy = HAProxy(options.haproxy_binary, self.files.config_path, socket)
        self.default_cert = default_cert or default_certificate()
        self.config: haproxy.Config | None = None  # what HAProxy runs now
        self.full_reload = False  # set after a failure: the next sync reloads
        self.ready = False
        self.dirty = asyncio.Event()
        self.announced: set[str] = set()
        self.warnings: tuple[str, ...] = ()
        self.reflectors = {
            name: Reflector(client, _res(name), None, self._changed)
            for name in ("ingresses", "ingressclasses", "services", "endpointslices",
                         "secrets")}

    def _changed(self, kind: str, obj: Obj) -> None:
        self.dirty.set()

    def objects(self, name: str) -> list[Obj]:
        return list(self.reflectors[name].objects.values())

    # -- HTTP endpoints ------------------------------------------------------------------------

    def http_routes(self) -> dict[str, Callable[[], tuple[int, str]]]:
        def healthz() -> tuple[int, str]:
            ok = self.ready and self.haproxy.running
            return (200, "ok\n") if ok else (503, "haproxy is not serving yet\n")
        return {"/healthz": healthz, "/metrics": lambda: (200, self.metrics.text())}

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled (stopping HAProxy then) or until HAProxy exits on its own
        (IngressError)."""
        self.options.state_dir.mkdir(parents=True, exist_ok=True)
        tasks = [asyncio.create_task(r.run(), name=f"reflector {n}")
                 for n, r in self.reflectors.items()]
        try:
            await asyncio.gather(*(r.synced.wait() for r in self.reflectors.values()))
            log.info("listed the API: %s", ", ".join(
                f"{len(r.objects)} {n}" for n, r in self.reflectors.items()))
            await self._first_sync()
            await self._loop()
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            await self.haproxy.stop(self.options.stop_grace)

    async def _first_sync(self) -> None:
        started = time.monotonic()
        self.dirty.clear()
        table = self.table()
        config = self.render(table, None)
        self._warn(table, config)
        self.files.write(config)
        await self.haproxy.check()
        await self.haproxy.start()
        self.config = config
        self.ready = True
        self._account(table, started)
        log.info("haproxy serves the first configuration: %d ingresses, %d backends, "
                 "%d certificates (%.0f ms)", len(table.ingresses), len(config.backends),
                 len(table.certificates), (time.monotonic() - started) * 1000)
        await self.write_statuses(table)

    async def _loop(self) -> None:
        assert self.haproxy.proc is not None
        exited = asyncio.create_task(self.haproxy.proc.wait())
        try:
            while True:
                woke = asyncio.create_task(self.dirty.wait())
                await asyncio.wait([woke, exited], return_when=asyncio.FIRST_COMPLETED)
                if exited.done():
                    woke.cancel()
                    raise IngressError(f"haproxy exited on its own (status "
                                       f"{self.haproxy.returncode()})")
                await asyncio.sleep(self.options.coalesce)
                self.dirty.clear()
                try:
                    await self.sync()
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # any failure: count it, reload fully next time
                    self.metrics.errors += 1
                    self.full_reload = True
                    log.error("sync failed: %s; a full reload in %gs", e, RETRY)
                    asyncio.get_running_loop().call_later(RETRY, self.dirty.set)
        finally:
            exited.cancel()

    # -- one sync ------------------------------------------------------------------------------

    def table(self) -> routes.RouteTable:
        return routes.build(self.objects("ingresses"), self.objects("ingressclasses"),
                            self.objects("services"), self.objects("endpointslices"),
                            self.objects("secrets"), controller=self.options.controller,
                            class_name=self.options.class_name)

    def render(self, table: routes.RouteTable, previous: haproxy.Config | None,
               compact: bool = False) -> haproxy.Config:
        o = self.options
        return haproxy.render(table, directory=str(o.state_dir),
                              socket=str(self.haproxy.socket), default_cert=self.default_cert,
                              http_port=o.http_port, https_port=o.https_port,
                              health_port=o.haproxy_health_port, bind_address=o.bind_address,
                              previous=previous, compact=compact)

    async def sync(self) -> None:
        started = time.monotonic()
        table = self.table()
        old = self.config
        config = self.render(table, old)
        self._warn(table, config)
        if old is None or self.full_reload or haproxy.needs_reload(old, config):
            why = haproxy.reload_reasons(old, config) if not self.full_reload else \
                ["after a failure"]
            config = self.render(table, old, compact=True)
            self.files.write(config)
            await self.haproxy.check()
            await self.haproxy.reload()
            self.config, self.full_reload = config, False
            self.metrics.reloads += 1
            log.info("reloaded haproxy: %d ingresses, %d backends (%.0f ms): %s",
                     len(table.ingresses), len(config.backends),
                     (time.monotonic() - started) * 1000, "; ".join(why) or "?")
        else:
            ops = haproxy.runtime_commands(old, config)
            self.files.write(config)  # first, so that a later reload starts from the same
            if ops:
                self.config = config  # the files are; on failure the next sync reloads
                sent = await self.haproxy.run_ops(ops)
                self.metrics.runtime_updates += 1
                self.metrics.runtime_commands += sent
                log.info("updated haproxy through the runtime API: %d commands (%.0f ms)",
                         sent, (time.monotonic() - started) * 1000)
            self.config = config
        self._account(table, started)
        await self.write_statuses(table)

    def _account(self, table: routes.RouteTable, started: float) -> None:
        self.metrics.syncs += 1
        self.metrics.ingresses = len(table.ingresses)
        self.metrics.backends = len(table.backends)
        self.metrics.last_sync_seconds = time.monotonic() - started

    def _warn(self, table: routes.RouteTable, config: haproxy.Config) -> None:
        """Log what was not followed, each once while it lasts; before applying, so the log
        has it by the time the proxy shows the change."""
        warnings = (*map(str, table.warnings),
                    *(f"haproxy configuration: {w}" for w in config.warnings))
        for w in warnings:
            if w not in self.warnings:
                log.warning("%s", w)
        self.warnings = warnings

    # -- status --------------------------------------------------------------------------------

    def addresses(self) -> list[str]:
        """The publish Service's LoadBalancer IPs (none without a publish Service)."""
        if self.options.publish_service is None:
            return []
        ns, name = self.options.publish_service
        for svc in self.objects("services"):
            meta = svc.get("metadata") or {}
            if (meta.get("namespace"), meta.get("name")) == (ns, name):
                return load_balancer_ips(svc)
        return []

    async def write_statuses(self, table: routes.RouteTable) -> None:
        addresses = self.addresses()
        self.announced.update(addresses)
        changes = status_changes(self.objects("ingresses"), set(table.ingresses), addresses,
                                 self.announced)
        res = _res("ingresses")
        failed = False
        for change in changes:
            try:
                await self.client.patch(res, change.ref.namespace, change.ref.name,
                                        change.patch(), subresource="status")
                self.metrics.status_writes += 1
                log.info("status of ingress %s: %s", change.ref,
                         ", ".join(change.ips) or "cleared")
            except ClientError as e:
                if getattr(e, "status", None) == 404:
                    continue  # deleted meanwhile
                failed = True
                self.metrics.errors += 1
                log.warning("status of ingress %s: %s", change.ref, e)
        if failed:
            asyncio.get_running_loop().call_later(RETRY, self.dirty.set)
