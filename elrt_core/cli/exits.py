"""How an ``elrt`` command ends: its exit statuses, and the one line that names a failure or a warning."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Iterator

__all__ = [
    "EXIT_USAGE",
    "EXIT_DIVERGED",
    "EXIT_OS_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_BROKEN_PIPE",
    "os_error",
    "one_line_warning",
    "quiet_stdout",
    "ctrl_c_ends_at_once",
]

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_OS_ERROR = 5
"""Exit status when the file system refuses: disk full, permission denied, a file where a folder belongs."""
EXIT_INTERRUPTED = 128 + signal.SIGINT
"""Exit status after Ctrl-C (130, as a shell reports it)."""
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
"""Exit status when the reader of the output went away (141, as a shell reports ``elrt plan | head``)."""

_NO_SPACE = "free some space and run it again (a run resumes from its last epoch's checkpoint)"
_NO_ACCESS = "give this user access to it, or choose another folder"
_FILE_FOR_FOLDER = "a file stands where a folder belongs: move it away"
_OS_FIXES = {
    errno.ENOSPC: _NO_SPACE,
    errno.EDQUOT: _NO_SPACE,
    errno.EACCES: _NO_ACCESS,
    errno.EPERM: _NO_ACCESS,
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.EISDIR: "a folder stands where a file belongs: move it away",
    errno.ENOTDIR: _FILE_FOR_FOLDER,
    errno.EEXIST: _FILE_FOR_FOLDER,
}
"""The fix to name for an OS error, by errno."""


def os_error(e: OSError) -> str:
    """One line for an OS error: what the system said, the path(s), and the fix (:data:`_OS_FIXES`)."""
    paths = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
    fix = _OS_FIXES.get(e.errno)
    return f"{e.strerror or e}" + (f": {paths}" if paths else "") + (f"; {fix}" if fix else "")


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a warning as ``elrt: warning: ...`` on one line, without the library's file and source line."""
    print(f"elrt: warning: {' '.join(str(message).split())}", file=sys.stderr)


def quiet_stdout() -> None:
    """Point stdout at /dev/null after its reader went away, so that flushing it at exit fails no more."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # a stdout without a file descriptor (a test's capture)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _end_interrupted(signum: int, frame: object) -> None:
    os.write(2, b"elrt: interrupted\n")
    os._exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def ctrl_c_ends_at_once() -> Iterator[None]:
    """Within the block, Ctrl-C (SIGINT) ends the process at once: one line ``elrt: interrupted``, exit
    status 130; the handler before the block is put back after it.

    For the imports and the argument parsing, before a command has written anything. A
    ``KeyboardInterrupt`` raised inside an import of NumPy, SciPy or Pillow (a C extension half loaded)
    can instead end the command with a traceback (``ImportError: cannot load module more than once per
    process``), be swallowed (exit status 0), or make Python end itself by SIGINT after the interrupt
    was handled (status -2). Outside the main thread, where no signal handler can be set, and in a
    process that ignores SIGINT (started in the background by a script), the block changes nothing."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        yield
        return
    before = signal.signal(signal.SIGINT, _end_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if before is None else before)
