"""Running container probes for the pod runtime (shell).

`ProbeRunner` performs single probe attempts for every pod of a node; `ContainerProbes` runs
one container run's probes, each kind in a task of its own, on podnet.runtime.probes' state
machine, and tells its pod worker when a result changes.

Where probes come from, as kubelet does it:

- httpGet and tcpSocket connect from the NODE's network namespace to the pod's IP (kubelet
  probes from the host). The agent itself runs in the host namespace, so one thread of it
  enters the node namespace with setns(2) (through ctypes: Python 3.11 has no os.setns) and
  stays there; it only creates sockets, which keep the namespace they were made in. The event
  loop then connects them and talks HTTP (or TLS without verifying the certificate, as
  kubelet's prober) with no thread per probe.
- exec runs the command in the pod's namespaces (podnet.runtime.exec_argv: nsenter to the
  pause process), in a session of its own, killed with its process group on timeout.

Lifecycle hooks (podnet.runtime.hooks) go the same ways: `ProbeRunner.run_hook` performs an
httpGet hook from the node's namespace (any HTTP answer is a success), an exec hook in the
pod's namespaces with the container's environment (exit status 0), or a sleep; with no time
limit of its own, the caller cancels it (which kills an exec hook's process group).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from podnet.kernel.setns import setns
from podnet.runtime import hooks, probes
from podnet.runtime.probes import Outcome, Probe
from podnet.runtime.sandbox import SYSTEM_PATH, reap_later
from podnet.runtime.status import Health

ExecPrefix = Callable[[], list[str]]


class NetnsUnavailable(OSError):
    """The node's network namespace could not be entered."""


class NetnsDialer:
    """Opens TCP connections from inside a network namespace: sockets are created by one
    thread that entered it, a batch at a time (a hand-off to the thread costs more than the
    socket), and connected by the event loop."""

    BATCH = 16

    def __init__(self, netns_path: Path) -> None:
        self.path = netns_path
        self.executor: ThreadPoolExecutor | None = None
        self.error: NetnsUnavailable | None = None
        self.spare: dict[int, list[socket.socket]] = {}

    def _enter(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            self.error = NetnsUnavailable(e.errno, f"cannot open {self.path}: {e.strerror}")
            return
        try:
            setns(fd)
        except OSError as e:
            self.error = NetnsUnavailable(e.errno or 0, f"setns {self.path}: {e.strerror}")
        finally:
            os.close(fd)

    def _sockets(self, family: int, count: int) -> list[socket.socket]:
        if self.error is not None:
            raise self.error
        out = []
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            out.append(sock)
        return out

    async def new_socket(self, family: int) -> socket.socket:
        """A new, unconnected, non-blocking TCP socket in the namespace."""
        spare = self.spare.setdefault(family, [])
        if spare:
            return spare.pop()
        if self.executor is None:
            self.error = None
            self.executor = ThreadPoolExecutor(1, thread_name_prefix="podnet-probe-netns",
                                               initializer=self._enter)
        try:
            made = await asyncio.get_running_loop().run_in_executor(
                self.executor, self._sockets, family, self.BATCH)
        except NetnsUnavailable:
            self.close()  # enter it afresh next time (the namespace may come back)
            raise
        sock = made.pop()
        self.spare.setdefault(family, []).extend(made)
        return sock

    async def connect(self, host: str, port: int) -> socket.socket:
        """A socket connected to host:port from inside the namespace; OSError if refused."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = await self.new_socket(family)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False)
            self.executor = None
        for socks in self.spare.values():
            for sock in socks:
                sock.close()
        self.spare.clear()


async def _status_line(sock: socket.socket, request: bytes) -> bytes:
    """Send a plain HTTP request and read the response's status line (up to 64 KiB)."""
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, request)
    buf = b""
    while b"\n" not in buf and len(buf) < 65536:
        data = await loop.sock_recv(sock, 4096)
        if not data:
            break
        buf += data
    if b"\n" not in buf and len(buf) >= 65536:
        raise ValueError("status line too long")
    return buf.split(b"\n", 1)[0] + (b"\n" if b"\n" in buf else b"")


def _reason(e: OSError) -> str:
    """An OSError as Go words it ("connection refused"); asyncio's connect errors carry the
    errno under a message of their own."""
    if isinstance(e, ssl.SSLError) or not e.errno:
        return str(e)
    return probes.go_errno_text(os.strerror(e.errno))


class ProbeRunner:
    """Performs probe attempts, and lifecycle hooks, for the pods of one node."""

    def __init__(self, node_netns: Path) -> None:
        self.dialer = NetnsDialer(node_netns)
        self._tls: ssl.SSLContext | None = None

    def close(self) -> None:
        self.dialer.close()

    def tls(self) -> ssl.SSLContext:
        """Client TLS that does not verify the server (kubelet's prober skips verification)."""
        if self._tls is None:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self._tls = ctx
        return self._tls

    async def run(self, probe: Probe, *, exec_prefix: ExecPrefix,
                  env: Mapping[str, str]) -> Outcome:
        action = probe.action
        if isinstance(action, probes.HttpGet):
            return await self.http_get(action, probe.timeout)
        if isinstance(action, probes.TcpSocket):
            return await self.tcp_socket(action, probe.timeout)
        if isinstance(action, probes.Exec):
            return await self.exec(action, probe.timeout, exec_prefix, env)
        return probes.errored(action.message)

    async def _address(self, host: str, port: int) -> tuple[str, int]:
        if probes.is_ip(host):
            return host, port
        infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)
        return str(infos[0][4][0]), port

    async def tcp_socket(self, action: probes.TcpSocket, timeout: int) -> Outcome:
        try:
            async with asyncio.timeout(timeout):
                host, port = await self._address(action.host, action.port)
                sock = await self.dialer.connect(host, port)
        except NetnsUnavailable as e:
            return probes.errored(e.strerror or str(e))
        except TimeoutError:
            return Outcome(probes.FAILURE, probes.dial_timeout(action.hostport))
        except OSError as e:
            return Outcome(probes.FAILURE, probes.dial_failure(action.hostport, _reason(e)))
        sock.close()
        return Outcome(probes.SUCCESS)

    async def http_get(self, action: probes.HttpGet, timeout: float | None) -> Outcome:
        """A probe's GET: 200 <= status < 400 passes."""
        try:
            line, failure = await self.http_exchange(action, timeout)
        except NetnsUnavailable as e:
            return probes.errored(e.strerror or str(e))
        if line is None:
            return Outcome(probes.FAILURE, failure)
        return probes.http_outcome(line, action.url)

    async def http_exchange(self, action: probes.HttpGet,
                            timeout: float | None) -> tuple[bytes | None, str]:
        """Send the GET and read the answer's status line: (line, "") or (None, why not, as
        Go's HTTP client words it). `timeout` None waits as long as it takes. Raises
        NetnsUnavailable when the node's namespace cannot be entered."""
        url = action.url
        writer: asyncio.StreamWriter | None = None
        stage = "dial"
        try:
            async with asyncio.timeout(timeout):
                host, port = await self._address(action.host, action.port)
                sock = await self.dialer.connect(host, port)
                stage = "talk"
                if action.scheme != "https":
                    try:
                        line = await _status_line(sock, action.request())
                    finally:
                        sock.close()
                else:
                    try:
                        reader, writer = await asyncio.open_connection(
                            sock=sock, ssl=self.tls(),
                            server_hostname="" if probes.is_ip(action.host) else action.host)
                    except BaseException:
                        sock.close()
                        raise
                    writer.write(action.request())
                    line = await reader.readline()
        except NetnsUnavailable:
            raise
        except TimeoutError:
            return None, probes.http_timeout(url)
        except ValueError:  # a status line longer than the stream's limit
            return None, f'Get "{url}": malformed HTTP response'
        except OSError as e:  # includes ssl.SSLError
            if stage == "dial":
                reason = probes.dial_failure(action.hostport, _reason(e))
            else:
                reason = _reason(e)
            return None, f'Get "{url}": {reason}'
        finally:
            if writer is not None:
                writer.close()
        if not line:
            return None, f'Get "{url}": EOF'
        return line, ""

    async def exec(self, action: probes.Exec, timeout: int, exec_prefix: ExecPrefix,
                   env: Mapping[str, str]) -> Outcome:
        try:
            argv = exec_prefix() + list(action.command)
            code, out = await run_command(argv, env, timeout)
        except (OSError, LookupError) as e:  # PodNotFound: the pause is gone
            return probes.errored(f"cannot run the command in the pod: {e}")
        if code is None:
            return probes.exec_timeout(action.command)
        return probes.exec_outcome(code, out)

    # -- lifecycle hooks ---------------------------------------------------------------------

    async def run_hook(self, action: hooks.HookAction, *, exec_prefix: ExecPrefix,
                       env: Mapping[str, str]) -> str | None:
        """Perform a lifecycle hook, for as long as it takes (the caller cancels it when its
        time is up); None when it succeeded, else why it failed. httpGet: any HTTP answer
        will do; exec: exit status 0; sleep: always."""
        if isinstance(action, hooks.Sleep):
            await asyncio.sleep(action.seconds)
            return None
        if isinstance(action, probes.HttpGet):
            try:
                line, failure = await self.http_exchange(action, None)
            except NetnsUnavailable as e:
                return e.strerror or str(e)
            return failure if line is None else None
        if isinstance(action, probes.Exec):
            try:
                code, out = await run_command(exec_prefix() + list(action.command), env, None)
            except (OSError, LookupError) as e:  # PodNotFound: the pause is gone
                return f"cannot run the command in the pod: {e}"
            if code == 0:
                return None
            text = out[:probes.MAX_OUTPUT].decode(errors="replace")
            return f"command exited with {code}, message: {json.dumps(text)}"
        return action.message


def _killpg(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_command(argv: list[str], env: Mapping[str, str],
                      timeout: float | None) -> tuple[int | None, bytes]:
    """Run a command in a session of its own; (exit status, up to 10 KiB of its stdout and
    stderr), or (None, output) when it ran out of time and its process group was killed.
    `timeout` None: no limit. Cancelling the call kills the process group too.

    posix_spawn (vfork) and a pidfd, not asyncio's subprocesses: a fork of the agent costs
    more than the probe command itself."""
    loop = asyncio.get_running_loop()
    path = argv[0] if "/" in argv[0] else (shutil.which(argv[0], path=SYSTEM_PATH) or argv[0])
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(path, argv, dict(env), setsid=True, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)])
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    os.set_blocking(r, False)
    chunks: list[bytes] = []
    size = 0

    def read() -> None:
        nonlocal size
        while True:
            try:
                data = os.read(r, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(r)
                return
            if size < probes.MAX_OUTPUT:
                chunks.append(data)
                size += len(data)

    exited: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    pidfd = os.pidfd_open(pid)
    loop.add_reader(pidfd, on_exit)
    loop.add_reader(r, read)
    timed_out = False

    def expire() -> None:
        nonlocal timed_out
        timed_out = True
        _killpg(pid)

    handle = loop.call_later(timeout, expire) if timeout is not None else None
    try:
        await exited
    except BaseException:
        _killpg(pid)
        reap_later(pid)
        raise
    finally:
        if handle is not None:
            handle.cancel()
        loop.remove_reader(pidfd)
        os.close(pidfd)
        read()  # what is left in the pipe; a process still holding it is not waited for
        loop.remove_reader(r)
        os.close(r)
    _, status = os.waitpid(pid, 0)  # it has exited: does not block
    out = b"".join(chunks)[:probes.MAX_OUTPUT]
    return (None, out) if timed_out else (os.waitstatus_to_exitcode(status), out)


class ContainerProbes:
    """The probes of one container run: a task per probe kind."""

    def __init__(self, runner: ProbeRunner, *, container: Mapping[str, Any], container_id: str,
                 started_at: float, pod_ip: str, exec_prefix: ExecPrefix,
                 env: Mapping[str, str], on_change: Callable[[], None],
                 on_unhealthy: Callable[[str], None], seed: Mapping[str, str] | None = None,
                 adopted: bool = False) -> None:
        self.runner = runner
        self.container = container
        self.container_id = container_id
        self.started_at = started_at
        self.exec_prefix = exec_prefix
        self.env = dict(env)
        self.on_change = on_change
        self.on_unhealthy = on_unhealthy
        self.adopted = adopted
        self.probes = probes.container_probes(container, pod_ip)
        self.trackers = {kind: probes.tracker(kind, (seed or {}).get(kind))
                         for kind in self.probes}
        self.started = asyncio.Event()
        if self.health().started:
            self.started.set()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.attempts = 0
        self.ending = False

    def __bool__(self) -> bool:
        return bool(self.probes)

    def start(self) -> None:
        self.tasks = {kind: asyncio.ensure_future(self._loop(kind)) for kind in self.probes}

    def stop(self) -> list[asyncio.Task[None]]:
        for task in self.tasks.values():
            task.cancel()
        return list(self.tasks.values())

    def terminating(self) -> None:
        """The pod is being deleted. As kubelet's probe workers do then: liveness and startup
        probes stop (a startup probe counts as passed), readiness goes on until the
        container exits, so that the pod's Ready condition stays truthful meanwhile."""
        if self.ending:
            return
        self.ending = True
        for kind in (probes.LIVENESS, probes.STARTUP):
            task = self.tasks.get(kind)
            if task is not None:
                task.cancel()
        startup = self.trackers.get(probes.STARTUP)
        if startup is not None and startup.result != probes.SUCCESS:
            self.trackers[probes.STARTUP] = probes.tracker(probes.STARTUP, probes.SUCCESS)
            self.started.set()
            self.on_change()

    def health(self) -> Health:
        return probes.health(self.container, self.container_id, self.trackers)

    def failed(self) -> str | None:
        return None if self.ending else probes.failed(self.trackers)

    def results(self) -> dict[str, str]:
        return {kind: t.result for kind, t in self.trackers.items()}

    async def _loop(self, kind: str) -> None:
        probe = self.probes[kind]
        last_at: float | None = None
        if self.adopted:  # the agent restarted: spread the first attempts over a period
            last_at = time.time() - probe.period * random.random()
        while True:
            if not probes.runs_now(kind, self.started.is_set()):
                if kind == probes.STARTUP:
                    return
                await self.started.wait()
            delay = probes.next_attempt(probe, self.started_at, last_at) - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            last_at = time.time()
            outcome = await self.runner.run(probe, exec_prefix=self.exec_prefix, env=self.env)
            self.attempts += 1
            old = self.trackers[kind]
            new = probes.observe(old, probe, outcome)
            self.trackers[kind] = new
            if outcome.failed:
                self.on_unhealthy(probes.unhealthy_message(kind, outcome))
            if new.result != old.result:
                if kind == probes.STARTUP and new.result == probes.SUCCESS:
                    self.started.set()
                self.on_change()
            if new.on_hold:
                return
