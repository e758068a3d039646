"""nftables in-process: libnftables (Debian's libnftables1) through ctypes, one context per
network namespace, so that applying a script costs no process start.

Where the rules go. A context talks to the kernel over one netlink socket (NETLINK_NETFILTER),
and a socket belongs to the network namespace of the thread that created it. libnftables
opens that socket in nft_ctx_new (nft_mnl_socket_open, when flags are NFT_CTX_DEFAULT: so in
the project's sources before and after 1.0.6, and so in the disassembly of Debian's 1.0.6
library), and any other socket it needs (the library has two more mnl_socket_open calls, for
an rtnetlink dump and a netfilter one) during a command, in the calling thread's namespace. So
each namespace gets a thread of its own that enters it with setns(2) and stays there; its
context is created, used and freed on that thread only, and lives as long as the process (or
until close()).

    caller (event loop) --arun(ns, script)--> thread "podnet-nft" in ns --> nft_ctx (socket in ns)

Serialized. A context is not thread safe, and 1.0.6 keeps some state global (the interface
cache, released at the end of every command), so every call into the library, whatever the
context, holds one process-wide lock. A namespace's calls also queue on its one thread.

One transaction. nft_run_cmd_from_filename (fed a memfd; see _Context.run) parses and
evaluates the whole script, as `nft -f` does, then sends it as one netlink batch, which the
kernel applies whole or not at all; a refused script raises KernelError with nft's own error
text and changes nothing.

A namespace that was deleted and made again under the same name is noticed (its inode
changed) and entered afresh; one that is gone raises KernelError. The thread holds a
reference to its namespace, which the kernel keeps alive until close() ends the thread.

Caveats: libnftables calls exit() when it cannot open its netlink socket, so the thread first
opens one itself and turns a failure into a KernelError. Its socket is made close-on-exec
(it is opened without SOCK_CLOEXEC) so that processes the caller spawns do not inherit it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from podnet.kernel import netns
from podnet.kernel.netns import KernelError
from podnet.kernel.setns import setns

LIBRARY = "libnftables.so.1"
TRIM_ABOVE = 256 * 1024  # bytes of script after which freed memory goes back to the kernel
NFT_CTX_DEFAULT = 0
NETLINK_NETFILTER = 12
SIOCGSKNS = 0x894C  # ioctl: a socket's network namespace, as a new descriptor


class Unavailable(Exception):
    """libnftables cannot be loaded (the library or one of its functions is missing)."""


class _Library:
    """The few functions of libnftables podnet uses, typed for ctypes."""

    def __init__(self, name: str) -> None:
        import ctypes

        lib = ctypes.CDLL(name)
        vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        self.ctx_new = self._fn(lib, "nft_ctx_new", [ctypes.c_uint32], vp)
        self.ctx_free = self._fn(lib, "nft_ctx_free", [vp], None)
        self.buffer_output = self._fn(lib, "nft_ctx_buffer_output", [vp], i)
        self.buffer_error = self._fn(lib, "nft_ctx_buffer_error", [vp], i)
        self.output_buffer = self._fn(lib, "nft_ctx_get_output_buffer", [vp], cp)
        self.error_buffer = self._fn(lib, "nft_ctx_get_error_buffer", [vp], cp)
        self.run_file = self._fn(lib, "nft_run_cmd_from_filename", [vp, cp], i)
        self.ctypes = ctypes
        # glibc's; None elsewhere. See _Context.run.
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
        if trim is not None:
            trim.argtypes, trim.restype = [ctypes.c_size_t], i
        self.malloc_trim = trim

    @staticmethod
    def _fn(lib: Any, name: str, argtypes: list[Any], restype: Any) -> Any:
        fn = getattr(lib, name)  # AttributeError when the library lacks it
        fn.argtypes, fn.restype = argtypes, restype
        return fn


_LOCK = threading.Lock()  # every call into the library, whatever the context
_REGISTRY_LOCK = threading.Lock()
_lib: _Library | None = None
_load_error: str | None = None
_loaded = False
_namespaces: dict[str, _Namespace] = {}


def _library() -> _Library:
    global _lib, _load_error, _loaded
    with _REGISTRY_LOCK:
        if not _loaded:
            try:
                _lib = _Library(LIBRARY)
            except (OSError, AttributeError) as e:
                _load_error = f"{LIBRARY}: {e}"
            _loaded = True
    if _lib is None:
        raise Unavailable(_load_error or LIBRARY)
    return _lib


def available() -> bool:
    """Whether libnftables can be used (loaded on the first call)."""
    return load_error() is None


def load_error() -> str | None:
    """Why libnftables cannot be loaded, or None when it can."""
    try:
        _library()
    except Unavailable as e:
        return str(e)
    return None


# -- one context -----------------------------------------------------------------------------


class _Context:
    """An nft_ctx with its output and errors buffered; made, used and freed on one thread."""

    def __init__(self, lib: _Library) -> None:
        self.lib = lib
        # libnftables exit()s when its socket cannot be opened: find out first, here.
        try:
            socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER).close()
        except OSError as e:
            raise KernelError(f"nft: cannot open a netfilter netlink socket: {e}") from None
        with _LOCK:
            ptr = lib.ctx_new(NFT_CTX_DEFAULT)
            if not ptr:
                raise KernelError("nft: nft_ctx_new failed")
            lib.buffer_output(ptr)
            lib.buffer_error(ptr)
        self.ptr: int = ptr
        self.last_ms = 0.0  # time spent inside the library by the last run()
        self.fd = self._socket_fd()
        if self.fd >= 0:
            os.set_inheritable(self.fd, False)

    def _socket_fd(self) -> int:
        """The descriptor of the context's netlink socket, or -1 when it cannot be told.
        libnftables has no call for it; in 1.0.6 `struct nft_ctx` starts with the socket
        (`struct mnl_socket *`), which starts with its descriptor. The guess is used only when
        the descriptor is a NETLINK_NETFILTER socket."""
        c = self.lib.ctypes
        with contextlib.suppress(ValueError, OSError):
            sock_ptr = c.c_void_p.from_address(self.ptr).value
            if not sock_ptr:
                return -1
            fd = int(c.c_int.from_address(sock_ptr).value)
            if fd < 0:
                return -1
            sock = socket.socket(fileno=fd)
            try:
                if sock.family == socket.AF_NETLINK and sock.proto == NETLINK_NETFILTER:
                    return fd
            finally:
                sock.detach()
        return -1

    def run(self, script: str) -> str:
        """Run `script` as one transaction; its output, or KernelError with nft's errors.

        The script is handed over as a file (a memfd), read by nft_run_cmd_from_filename as
        `nft -f` reads one: nft_run_cmd_from_buffer in 1.0.6 quotes the script's first line
        under every error, whatever line it is about, and gives no line number."""
        fd = os.memfd_create("podnet-nft", os.MFD_CLOEXEC)
        try:
            data = memoryview(script.encode())
            while data:
                data = data[os.write(fd, data):]
            name = f"/proc/self/fd/{fd}"
            with _LOCK:
                started = time.perf_counter()
                rc = self.lib.run_file(self.ptr, name.encode())
                self.last_ms = (time.perf_counter() - started) * 1000
                out = self.lib.output_buffer(self.ptr) or b""
                err = self.lib.error_buffer(self.ptr) or b""
        finally:
            os.close(fd)
        if len(script) > TRIM_ABOVE and self.lib.malloc_trim is not None:
            # Parsing a full table (10,000 Services: 1.6 MB) takes ~45 MB of small blocks,
            # all freed at the end; without this the process keeps them (RSS +45 MB).
            self.lib.malloc_trim(0)
        if rc != 0:
            text = err.decode(errors="replace").strip().replace(name + ":", "script:")
            raise KernelError(f"nft: {text or 'exit 1'}")
        return bytes(out).decode(errors="replace")

    def free(self) -> None:
        if self.ptr:
            with _LOCK:
                self.lib.ctx_free(self.ptr)
            self.ptr = 0


# -- one thread per namespace ----------------------------------------------------------------


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class _Namespace:
    """A thread inside one named network namespace, and the context it made there."""

    def __init__(self, lib: _Library, name: str) -> None:
        self.lib = lib
        self.name = name
        self.identity: tuple[int, int] | None = None  # of the namespace the thread entered
        self.ctx: _Context | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="podnet-nft")

    def _enter(self) -> None:
        """On the thread: enter the namespace and create the context there."""
        path = netns.path(self.name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise KernelError(f'nft: cannot open network namespace "{self.name}": '
                              f"{e.strerror}") from None
        try:
            setns(fd)
            identity = _identity(os.fstat(fd))
        except OSError as e:
            raise KernelError(f'nft: cannot enter network namespace "{self.name}": '
                              f"{e.strerror}") from None
        finally:
            os.close(fd)
        self.identity = identity
        self.ctx = _Context(self.lib)

    def _run(self, script: str) -> str:
        if self.ctx is None:
            self._enter()
        assert self.ctx is not None
        return self.ctx.run(script)

    def _socket_netns(self) -> tuple[int, int]:
        if self.ctx is None:
            self._enter()
        assert self.ctx is not None
        if self.ctx.fd < 0:
            raise KernelError("nft: the context's socket is not known")
        import fcntl

        ns_fd = fcntl.ioctl(self.ctx.fd, SIOCGSKNS)
        try:
            return _identity(os.fstat(ns_fd))
        finally:
            os.close(ns_fd)

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        return self.executor.submit(fn, *args)

    def close(self) -> None:
        """Free the context on its thread, then let the thread end (it leaves the namespace
        with it). Calls already queued run first."""
        def free() -> None:
            if self.ctx is not None:
                self.ctx.free()
                self.ctx = None

        with contextlib.suppress(RuntimeError):  # already shut down
            self.executor.submit(free)
        self.executor.shutdown(wait=False)


def _namespace(name: str) -> _Namespace:
    """The thread for `name`, made on first use, or made afresh when the namespace at that
    name is not the one the old thread entered."""
    lib = _library()
    try:
        current = _identity(os.stat(netns.path(name)))
    except OSError as e:
        close(name)
        raise KernelError(f'nft: cannot open network namespace "{name}": {e.strerror}') from None
    with _REGISTRY_LOCK:
        ns = _namespaces.get(name)
        if ns is not None and ns.identity is not None and ns.identity != current:
            ns.close()
            ns = None
        if ns is None:
            ns = _namespaces[name] = _Namespace(lib, name)
        return ns


# -- the interface ---------------------------------------------------------------------------


def _submit(ns: str, method: str, *args: Any) -> Future[Any]:
    """Queue a call on `ns`'s thread; once more on a new thread when close() ended the old
    one in between."""
    for attempt in (1, 2):
        target = _namespace(ns)
        try:
            return target.submit(getattr(target, method), *args)
        except RuntimeError:  # shut down by close() since _namespace() returned it
            with _REGISTRY_LOCK:
                if _namespaces.get(ns) is target:
                    del _namespaces[ns]
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def run(ns: str, script: str, *, timeout: float = 60.0) -> str:
    """Run `script` as one nft transaction in namespace `ns` and return nft's output (what
    `list` commands print); KernelError when nft refuses it (nothing of it is applied then).
    Blocks the calling thread; the event loop's callers use arun()."""
    fut = _submit(ns, "_run", script)
    try:
        return str(fut.result(timeout))
    except TimeoutError:
        raise KernelError(f"nft in {ns}: timed out after {timeout}s") from None


async def arun(ns: str, script: str, *, timeout: float = 60.0) -> str:
    """run() without blocking the event loop. On a timeout the call may still complete on
    the namespace's thread (as a killed nft process may have sent its batch already)."""
    fut = asyncio.wrap_future(_submit(ns, "_run", script))
    try:
        return str(await asyncio.wait_for(fut, timeout))
    except TimeoutError:
        raise KernelError(f"nft in {ns}: timed out after {timeout}s") from None


def library_ms(ns: str) -> float:
    """How long the last script run in `ns` spent inside libnftables (parsing, the cache,
    the kernel's answer), in ms; 0.0 before the first. For logs: where an apply's time goes."""
    with _REGISTRY_LOCK:
        target = _namespaces.get(ns)
    ctx = target.ctx if target is not None else None
    return ctx.last_ms if ctx is not None else 0.0


def socket_netns(ns: str) -> tuple[int, int]:
    """(st_dev, st_ino) of the namespace that `ns`'s context's netlink socket belongs to
    (ioctl SIOCGSKNS), to compare with os.stat of /run/netns/<ns>: for tests."""
    dev, ino = _submit(ns, "_socket_netns").result(30)
    return int(dev), int(ino)


def contexts() -> list[str]:
    """The namespaces that have a thread (and, once used, a context) now."""
    with _REGISTRY_LOCK:
        return sorted(_namespaces)


def close(ns: str) -> None:
    """Free `ns`'s context and end its thread (the next call makes new ones)."""
    with _REGISTRY_LOCK:
        target = _namespaces.pop(ns, None)
    if target is not None:
        target.close()


def close_all() -> None:
    for name in contexts():
        close(name)


def _after_fork_in_child() -> None:
    """A forked child has none of the threads: forget them (and a lock a thread held)."""
    global _LOCK, _REGISTRY_LOCK
    _LOCK, _REGISTRY_LOCK = threading.Lock(), threading.Lock()
    _namespaces.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
