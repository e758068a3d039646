"""setns(2) for the calling thread, cheap to import: the CNI plugin's start-up path, the
agent's CNI server and its probers all enter network namespaces this way (a thread's namespace is
its own). Python 3.12 has os.setns; on 3.11 it goes through _ctypes, loaded only when needed."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CLONE_NEWNET = 0x40000000

_libc_setns: Any = None


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open at `fd`."""
    fn = getattr(os, "setns", None)  # Python 3.12+
    if fn is not None:
        fn(fd, CLONE_NEWNET)
        return
    global _libc_setns
    import _ctypes

    if _libc_setns is None:
        class CInt(_ctypes._SimpleCData):  # type: ignore[type-arg,unused-ignore]
            _type_ = "i"

        class Func(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = CInt

        libc = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type,unused-ignore]
        func = Func(_ctypes.dlsym(libc, "setns"))
        func.argtypes = (CInt, CInt)
        _libc_setns = func
    if _libc_setns(fd, CLONE_NEWNET) != 0:
        err = _ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")
