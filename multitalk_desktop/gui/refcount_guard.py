"""Work around a reference-counting bug in PySide6 6.12 on Python 3.10/3.11.

Measured here (PySide6 6.12.0, Python 3.11.7): every call of a Qt method that returns nothing
(`label.setText`, `widget.update`, `app.processEvents`, ...) drops one reference to `None` that
it never took, and every Python-side `signal.emit(...)` does the same to `True`. Python 3.12+
makes these objects immortal, so the bug is invisible there; on 3.11 the count reaches zero after
a few thousand calls and the interpreter aborts ("Fatal Python error: none_dealloc").

The fix does what Python 3.12 does: it gives None, True and False a reference count so large
(2**40) that no run of the app can wear it down. It touches nothing else and does nothing on
3.12+ or on interpreters other than CPython. It must run before Qt is used much, so
`multitalk_desktop.gui` applies it on import.
"""

from __future__ import annotations

import sys

_APPLIED = False
_HEADROOM = 1 << 40


def immortalise_singletons() -> bool:
    """Returns True when the counts were raised (CPython < 3.12, release build)."""
    global _APPLIED
    if _APPLIED:
        return True
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    if hasattr(sys, "gettotalrefcount"):  # debug builds put other fields before ob_refcnt
        return False
    import ctypes

    for obj in (None, True, False):
        # ob_refcnt is the first field of every object in a release build of CPython.
        ctypes.c_ssize_t.from_address(id(obj)).value += _HEADROOM
    _APPLIED = True
    return True
