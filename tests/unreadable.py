"""Make a path really unreadable, even for root, for the duration of a `with` block.

`chmod 000` alone does not stop root: CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH bypass permission bits. So besides
the chmod, this drops those two capabilities from the *effective* set of the calling thread (Linux capabilities are
per thread) and restores them afterwards. The kernel then refuses the open/scandir with a real EACCES, exactly as
for an ordinary user; no Python function is patched.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

_CAP_VERSION_3 = 0x20080522
_DAC_CAPS = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _set_effective(drop: bool) -> None:
    libc = _libc()
    header, data = _Header(_CAP_VERSION_3, 0), (_Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    data[0].effective = data[0].effective & ~_DAC_CAPS if drop else data[0].permitted
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


@contextlib.contextmanager
def unreadable(*paths: Path) -> Iterator[None]:
    """`paths` cannot be read or listed by this thread inside the block (root included)."""
    modes = [p.stat().st_mode for p in paths]
    for path in paths:
        path.chmod(0)
    dropped = os.geteuid() == 0
    if dropped:
        _set_effective(drop=True)
    try:
        yield
    finally:
        if dropped:
            _set_effective(drop=False)
        for path, mode in zip(paths, modes, strict=True):
            path.chmod(mode)
