"""The ``elrt`` command line: argument parsing and validation only; the work is in the library.

One module per command (its parser and its body together): :mod:`.train`, :mod:`.batch`,
:mod:`.status`, :mod:`.plan`, :mod:`.reproduce`, :mod:`.calibrate`, :mod:`.info`, :mod:`.data`,
:mod:`.bench` and :mod:`.gpu` (a package, one module per action); what they share is in
:mod:`.common`, :mod:`.selection` and :mod:`.exits`.

Every argument is validated before any work starts (no data is read, no folder created): a bad one
ends the command with one line ``elrt: error: ...`` naming the bad value and the allowed ones, and
exit status 2. A run that diverges ends with one line ``elrt: diverged: ...`` and exit status 3; a run
whose folder another process is training in ends with ``elrt: busy: ...`` and exit status 4. The file
system refusing (disk full, permission denied, a file where a folder belongs) ends with one line
naming the path and the fix, exit status 5; Ctrl-C, from the first moment on, with exit status 130;
a reader of the output that goes away (``elrt plan | head``) quietly with exit status 141. Warnings
are one line ``elrt: warning: ...`` each.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from importlib.metadata import PackageNotFoundError, version

from .exits import (
    EXIT_BROKEN_PIPE,
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_OS_ERROR,
    EXIT_USAGE,
    ctrl_c_ends_at_once,
    one_line_warning,
    os_error,
    quiet_stdout,
)

with ctrl_c_ends_at_once():  # importing PyTorch takes seconds: Ctrl-C meanwhile ends the command in one line, status 130
    from ..config import ConfigError
    from ..data import DataNotFoundError
    from ..train import TrainingDiverged
    from ..train.run_folder import BUSY_EXIT_STATUS, FolderBusy
    from . import batch, bench, calibrate, data, gpu, info, plan, reproduce, status, train
    from .common import Parser, UsageError

__all__ = ["main", "build_parser", "EXIT_USAGE", "EXIT_DIVERGED", "EXIT_OS_ERROR", "EXIT_INTERRUPTED", "EXIT_BROKEN_PIPE"]

COMMANDS = (train, batch, status, plan, reproduce, calibrate, info, data, bench, gpu)
"""The command modules, in the order ``elrt --help`` lists them."""


def _version() -> str:
    try:
        return version("elrt_core")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The ``elrt`` parser: ``--version``, ``--root`` and one subcommand per module of :data:`COMMANDS`."""
    parser = Parser(prog="elrt", description="ELRT study: low-rank training of compact CNNs")
    parser.add_argument("--version", action="version", version=f"elrt {_version()}")
    parser.add_argument("--root", help="the study's folder (default: found from the working directory; $ELRT_ROOT)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``elrt`` command; its exit status (see the module docstring)."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line_warning
            with ctrl_c_ends_at_once():  # the parsers import the study's libraries (SciPy, Matplotlib)
                args = build_parser().parse_args(argv)
            if args.root:
                os.environ["ELRT_ROOT"] = args.root
            exit_status = args.func(args)
            sys.stdout.flush()  # a reader that went away is noticed here, not in the interpreter's exit
            return exit_status
    except TrainingDiverged as e:
        print(f"elrt: diverged: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except FolderBusy as e:
        print(f"elrt: busy: {e}", file=sys.stderr)
        return BUSY_EXIT_STATUS
    except KeyboardInterrupt:  # a training run keeps its last epoch's checkpoint; `--resume` / the next batch continues
        print("elrt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, ConfigError, ValueError, FileNotFoundError, LookupError) as e:
        # ConfigError and the library's input checks are ValueErrors; DataNotFoundError and a missing
        # study folder are FileNotFoundErrors; MissingRun and DuplicateRecords are LookupErrors
        if os.environ.get("ELRT_DEBUG"):
            raise
        message = " ".join(str(e).split()) if isinstance(e, DataNotFoundError) else str(e)
        print(f"elrt: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `elrt plan | head`: stop quietly, as other command-line tools do
        quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as e:  # disk full, permission denied, a file where a folder belongs: one line, never a traceback
        if os.environ.get("ELRT_DEBUG"):
            raise
        print(f"elrt: error: {os_error(e)}", file=sys.stderr)
        return EXIT_OS_ERROR
