"""The CNI server: podnet-cni's plugin logic, in the node agent, for the podnet-cni shim.

An exec'd Python plugin spends ~12 ms of a ~18 ms ADD starting the interpreter and importing;
the netlink and IPAM work is ~2 ms. So the agent keeps the plugin loaded and serves it on a
unix socket (mode 0600, `<node dir>/cni.sock`), and the runtime execs a tiny C client in its
place (tools/podnet-cni-shim.c, installed as `podnet-cni` by `install_shim`). The shim stays a
conformant CNI plugin: same argv, environment, stdin, stdout and exit status; with no server
it execs the Python launcher instead.

Protocol (one call per connection; integers in the host's byte order):

    request   b"PNC1" u32 env_len u32 stdin_len, env_len bytes of "K=V\\0" strings, stdin;
              the first message carries, as SCM_RIGHTS, an fd of the caller's network namespace
    response  b"PNC1" i32 exit_status u32 stdout_len, the stdout bytes

The call runs `podnet.cni.plugin.handle(env, stdin)` on one of a few worker threads. A
thread's network namespace is its own, so each worker first enters the caller's namespace with
setns(2) (the node's, where the runtime runs plugins; skipped when the thread is already
there), exactly where the exec'd plugin would have run; netlink sockets, the pod namespace
switch of `Netlink.in_netns`, and processes the plugin spawns (a delegated IPAM plugin, the
delayed veth deletion) all follow the thread. Address allocation stays serialized by the IPAM
store's flock, which separates threads as it separates processes (one open file description
each), and exec'd plugins share the same lock.

A request that cannot be decoded, or that carries no namespace fd (the server never guesses
where to plumb), is answered with a CNI error object and exit status 1; the server goes on.
"""

from __future__ import annotations

import array
import collections
import contextlib
import logging
import os
import shutil
import socket
import struct
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from podnet.cni import plugin
from podnet.cni.spec import ERR_DECODE, ERR_INVALID_ENV, LATEST, CniError
from podnet.kernel.setns import setns

__all__ = ["MAGIC", "CniServer", "decode_request", "encode_request", "install_shim",
           "shim_source"]

log = logging.getLogger("podnet.cni.server")

MAGIC = b"PNC1"
_HEAD = struct.Struct("=4sII")  # magic, env_len, stdin_len
_ANSWER = struct.Struct("=4siI")  # magic, exit status, stdout_len
MAX_ENV = 1 << 20
MAX_STDIN = 16 << 20
READ_TIMEOUT = 10.0
SOCKET_NAME = "cni.sock"
LAUNCHER_NAME = "podnet-cni.py"
SHIM_BINARY = "podnet-cni-shim"  # scripts/install.sh puts a prebuilt one in <venv>/bin
Handler = Callable[[Mapping[str, str], bytes], tuple[bytes, int]]


# -- the wire format (pure) --------------------------------------------------------------------
def encode_request(env: Mapping[str, str], stdin: bytes) -> bytes:
    """What the shim sends (without the namespace fd); for tests and Python clients."""
    block = b"".join(os.fsencode(k) + b"=" + os.fsencode(v) + b"\0" for k, v in env.items())
    return _HEAD.pack(MAGIC, len(block), len(stdin)) + block + stdin


def decode_env(block: bytes) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in block.split(b"\0"):
        if not item:
            continue
        key, eq, value = item.partition(b"=")
        if not eq or not key:
            raise CniError(ERR_DECODE, f"podnet-cni server: malformed environment entry "
                           f"{item[:60]!r}")
        env[os.fsdecode(key)] = os.fsdecode(value)
    return env


def decode_request(head: bytes) -> tuple[int, int]:
    """(env_len, stdin_len) of a request header; CniError when it is not one."""
    if len(head) != _HEAD.size:
        raise CniError(ERR_DECODE, "podnet-cni server: truncated request header")
    magic, env_len, stdin_len = _HEAD.unpack(head)
    if magic != MAGIC:
        raise CniError(ERR_DECODE, f"podnet-cni server: not a podnet-cni request (magic "
                       f"{magic!r})")
    if env_len > MAX_ENV or stdin_len > MAX_STDIN:
        raise CniError(ERR_DECODE, f"podnet-cni server: request too large (environment "
                       f"{env_len} bytes, stdin {stdin_len} bytes)")
    return env_len, stdin_len


def encode_answer(stdout: bytes, status: int) -> bytes:
    return _ANSWER.pack(MAGIC, status, len(stdout)) + stdout


def error_answer(e: CniError) -> bytes:
    return encode_answer((plugin.dumps(e.to_dict(LATEST)) + "\n").encode(), 1)


# -- the server --------------------------------------------------------------------------------
def _inode(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


class CniServer:
    """Serve podnet-cni on a unix socket with `workers` threads (see the module docstring).
    `netns` (a path) is the namespace the workers enter at start, the node's: callers in it
    cost no setns."""

    def __init__(self, path: str | os.PathLike[str], *, netns: str | None = None,
                 workers: int = 4, handler: Handler = plugin.handle) -> None:
        self.path = Path(path)
        self.netns = netns
        self.workers = workers
        self.handler = handler
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._bound: tuple[int, int] | None = None  # of the socket file we bound
        self.calls = 0  # answered calls
        self.commands: collections.Counter[str] = collections.Counter()  # by CNI_COMMAND
        self._count_lock = threading.Lock()

    def start(self) -> None:
        """Bind (atomically replacing a stale socket of an earlier agent) and serve."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            with _short_address(tmp) as address:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(address)
                sock.bind(address)
            os.chmod(tmp, 0o600)
            self._bound = _inode(str(tmp))
            os.replace(tmp, self.path)
            sock.listen(128)
        except BaseException:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._sock = sock
        ready = threading.Barrier(self.workers + 1)
        errors: list[BaseException] = []
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, args=(ready, errors),
                                 name=f"cni-server-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        ready.wait()
        if errors:
            self.stop()
            raise errors[0]
        log.info("CNI server on %s (%d workers)", self.path, self.workers)

    def stop(self) -> None:
        """Stop serving and remove the socket (only if it is still ours)."""
        if self._sock is None:
            return
        self._stopping = True
        sock, self._sock = self._sock, None
        with contextlib.suppress(OSError):
            if _inode(str(self.path)) == self._bound:
                os.unlink(self.path)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the workers blocked in accept()
        for t in self._threads:
            t.join(timeout=READ_TIMEOUT + 5)
        self._threads.clear()
        sock.close()

    def __enter__(self) -> CniServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- workers ---------------------------------------------------------------------------
    def _worker(self, ready: threading.Barrier, errors: list[BaseException]) -> None:
        try:
            if self.netns is not None:
                fd = os.open(self.netns, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    setns(fd)
                finally:
                    os.close(fd)
            here = _inode("/proc/thread-self/ns/net")
        except BaseException as e:
            errors.append(e)
            ready.wait()
            return
        ready.wait()
        sock = self._sock
        while sock is not None and not self._stopping:
            try:
                conn, _ = sock.accept()
            except OSError:
                if self._stopping:
                    return
                continue
            with conn:
                try:
                    here = self._serve(conn, here)
                except Exception:  # a bug or a vanished client: never take the worker down
                    log.exception("CNI server: a call failed")

    def _serve(self, conn: socket.socket, here: tuple[int, int]) -> tuple[int, int]:
        """Answer one call; returns the namespace the thread is in afterwards."""
        conn.settimeout(READ_TIMEOUT)
        fds: list[int] = []
        try:
            try:
                env, stdin = self._read_request(conn, fds)
                if len(fds) != 1:
                    raise CniError(ERR_INVALID_ENV, "podnet-cni server: the request carries "
                                   f"{len(fds)} file descriptors; want one, of the caller's "
                                   "network namespace")
                st = os.fstat(fds[0])
                if (st.st_dev, st.st_ino) != here:
                    setns(fds[0])  # EINVAL unless it is a network namespace
                    here = (st.st_dev, st.st_ino)
            except CniError as e:
                log.warning("CNI server: refused a request: %s", e.msg)
                conn.sendall(error_answer(e))
                return here
            except OSError as e:
                if isinstance(e, (TimeoutError, ConnectionError)):
                    log.warning("CNI server: dropped a request: %s", e)
                    return here
                why = os.strerror(e.errno) if e.errno else str(e)
                err = CniError(ERR_INVALID_ENV, "podnet-cni server: cannot enter the caller's "
                               f"network namespace: {why}")
                log.warning("CNI server: refused a request: %s", err.msg)
                conn.sendall(error_answer(err))
                return _inode("/proc/thread-self/ns/net")
        finally:
            for fd in fds:
                os.close(fd)
        out, status = self.handler(env, stdin)
        with self._count_lock:
            self.calls += 1
            self.commands[env.get("CNI_COMMAND", "")] += 1
        conn.sendall(encode_answer(out, status))
        return here

    @staticmethod
    def _read_request(conn: socket.socket, fds: list[int]) -> tuple[dict[str, str], bytes]:
        head = b""
        while len(head) < _HEAD.size:
            data, anc, _flags, _addr = conn.recvmsg(_HEAD.size - len(head),
                                                     socket.CMSG_SPACE(4 * 4))
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    got = array.array("i")
                    got.frombytes(payload[:len(payload) - len(payload) % got.itemsize])
                    fds.extend(got)
            if not data:
                break
            head += data
        env_len, stdin_len = decode_request(head)
        body = _recv_exact(conn, env_len + stdin_len)
        return decode_env(body[:env_len]), body[env_len:]


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = conn.recv_into(view[got:])
        if k == 0:
            raise CniError(ERR_DECODE, f"podnet-cni server: request cut short ({got} of {n} "
                           "bytes)")
        got += k
    return bytes(buf)


class _short_address:
    """A name to bind a unix socket at `path` by, within sun_path's 108 bytes: the path
    itself, or /proc/self/fd/<dir fd>/<name> when it is longer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dfd = -1

    def __enter__(self) -> str:
        if len(os.fsencode(self.path)) < 100:
            return str(self.path)
        self.dfd = os.open(self.path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return f"/proc/self/fd/{self.dfd}/{self.path.name}"

    def __exit__(self, *exc: object) -> None:
        if self.dfd >= 0:
            os.close(self.dfd)


# -- installing the shim -----------------------------------------------------------------------
def shim_source() -> Path:
    """tools/podnet-cni-shim.c of this source tree (absent in an installed wheel)."""
    return Path(__file__).resolve().parents[2] / "tools" / "podnet-cni-shim.c"


def _is_fresh_elf(path: Path, source: Path) -> bool:
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF" or not os.access(path, os.X_OK):
                return False
        return not source.exists() or path.stat().st_mtime >= source.stat().st_mtime
    except OSError:
        return False


def _compile(source: Path, dest: Path) -> bool:
    import subprocess

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not source.exists():
        return False
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
    proc = subprocess.run([cc, "-O2", "-o", str(tmp), str(source)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        log.warning("cannot compile %s: %s", source, proc.stderr.strip()[:2000])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        return False
    os.replace(tmp, dest)
    return True


def install_shim(directory: str | os.PathLike[str], socket_path: str | os.PathLike[str],
                 name: str = "podnet-cni") -> bool:
    """Make `directory` a CNI bin dir whose `name` talks to the CNI server at socket_path:
    the C shim (`<venv>/bin/podnet-cni-shim` when it is there and fresh, else compiled from
    tools/podnet-cni-shim.c with cc, kept while fresh), `podnet-cni.py` (the Python launcher
    the shim falls back to) and `cni.sock`, a symlink to the socket. Without a shim (no
    prebuilt binary, no compiler) `name` is the Python launcher itself. True when the shim is
    installed."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    plugin.install_launcher(d, LAUNCHER_NAME)
    dest = d / name
    source = shim_source()
    prebuilt = Path(sys.prefix) / "bin" / SHIM_BINARY
    ok = _is_fresh_elf(dest, source)
    if not ok and _is_fresh_elf(prebuilt, source):
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
        shutil.copy2(prebuilt, tmp)  # a copy: the shim finds its files by /proc/self/exe
        os.replace(tmp, dest)
        ok = True
    if not ok:
        ok = _compile(source, dest)
    if not ok:
        plugin.install_launcher(d, name)
        return False
    link = d / SOCKET_NAME
    target = os.path.abspath(socket_path)
    if os.path.abspath(link) != target:
        if os.path.islink(link) and os.readlink(link) == target:
            return True
        tmp_link = d / f".{SOCKET_NAME}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_link)
        os.symlink(target, tmp_link)
        os.replace(tmp_link, link)
    return True
