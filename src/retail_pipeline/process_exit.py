"""Ending a process as the interpreter's exit would, without tearing down its modules.

An interpreter that imported dbt, pandas or pyarrow spends a third to half a second at exit
freeing its modules; nothing of ours needs that. :func:`exit_now` does the rest of what the
interpreter does at exit, in its order, then ``os._exit``. Used by the console script
(:mod:`.cli`) and by the dbt fork server and the processes it forks (:mod:`.dbt_forkserver`).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import NoReturn

#: the exit code the interpreter gives when it cannot flush the standard streams (a closed pipe)
UNFLUSHED = 120


def exit_code(code: object) -> int:
    """What the interpreter exits with for ``SystemExit(code)`` (a message is printed, code 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def exit_now(code: int, *, join_threads: bool = True) -> NoReturn:
    """Wait for the threads that are not daemons (``join_threads``), run the atexit handlers, shut
    logging down, flush the standard streams, then end the process with ``code``."""
    if join_threads:
        threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or UNFLUSHED
    os._exit(code)
