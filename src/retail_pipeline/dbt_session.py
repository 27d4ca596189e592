"""dbt in the dbt worker process: imported once, the project parsed once, every command reusing it.

dbt's programmatic runner takes an already parsed project (``dbtRunner(manifest=...)``), so a
process that runs many batches parses the project once, and again only when a file of the project
(or the arguments or environment the parse depends on) changes. The first parse of a home writes
dbt's ``partial_parse.msgpack`` into the home's target folder, so a later process starts from it.

This module runs inside the worker process started by :mod:`.dbt_worker` (:func:`serve`); the
process is dbt's alone, and its environment (what dbt's profile reads with ``env_var()``) is the
one it was started with. dbt's runner keeps global state: the worker runs one request at a time.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SKIPPED_DIRS = {"target", "logs", "dbt_packages", "__pycache__", ".git"}


def project_fingerprint(project_dir: Path) -> tuple:
    """(relative path, size, mtime) of every file of the project: equal means nothing to re-parse."""
    found = []
    for root, dirs, files in os.walk(project_dir):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(files):
            stat = os.stat(os.path.join(root, name))
            found.append((os.path.relpath(os.path.join(root, name), project_dir), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


@dataclass(frozen=True)
class DbtRequest:
    """dbt commands to run one after the other on one project; the first failure stops the rest."""

    project_dir: Path
    common_args: tuple[str, ...]  #: --project-dir, --profiles-dir, --target, --target-path, ...
    env: tuple[tuple[str, str | None], ...]  #: what dbt's project reads; None = unset
    commands: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()  #: (command words, extra args)
    workdir: Path | None = None  #: the folder relative paths in env are relative to (the warehouse's)


@dataclass
class DbtReply:
    """What the worker sends back: the outcome of the last command run, and where the time went."""

    status: str
    tests_passed: int = 0
    tests_failed: int = 0
    models_built: int = 0
    error: str | None = None
    spans: dict[str, float] = field(default_factory=dict)  #: seconds: import, parse, each command


class _Parsed:
    """The manifest of the last project parsed in this process, and what it was parsed from."""

    key: tuple | None = None
    manifest: Any = None


PARSE_FILE = "partial_parse.msgpack"


def _target_path(request: DbtRequest) -> Path:
    args = list(request.common_args)
    return Path(args[args.index("--target-path") + 1])


def _copy_atomically(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.{os.getpid()}")
    shutil.copyfile(source, partial)
    os.replace(partial, destination)


def _seed_parse(request: DbtRequest, spans: dict[str, float]) -> None:
    """A home without a saved parse starts from the project's (``dbt/target``), the way the job
    image starts from the parse made at build time. dbt checks the copy like any saved parse (dbt
    version, profile, vars, every file's checksum) and parses whatever differs."""
    home_parse, project_parse = _target_path(request) / PARSE_FILE, request.project_dir / "target" / PARSE_FILE
    if not home_parse.exists() and project_parse.exists():
        try:
            _copy_atomically(project_parse, home_parse)
            spans["seeded"] = 1.0
        except OSError:
            pass


def _share_parse(request: DbtRequest) -> None:
    """Keep the newest parse in the project's target folder for the next new home (best effort:
    the project folder may be read-only)."""
    home_parse, project_parse = _target_path(request) / PARSE_FILE, request.project_dir / "target" / PARSE_FILE
    try:
        if home_parse.exists() and (
            not project_parse.exists() or home_parse.stat().st_mtime_ns > project_parse.stat().st_mtime_ns
        ):
            _copy_atomically(home_parse, project_parse)
    except OSError:
        pass


def _manifest(request: DbtRequest, spans: dict[str, float]) -> Any:
    key = (request.common_args, request.env, request.workdir, project_fingerprint(request.project_dir))
    if _Parsed.manifest is not None and key == _Parsed.key:
        return _Parsed.manifest
    started = time.monotonic()
    from dbt.cli.main import dbtRunner

    spans["import"] = round(time.monotonic() - started, 3)
    started = time.monotonic()
    _seed_parse(request, spans)
    # the parse keeps dbt's saved parse (partial_parse.msgpack) up to date; manifest.json is written
    # by the command that follows (about a quarter of a second less per parse)
    outcome = dbtRunner().invoke(["parse", *request.common_args, "--no-write-json"])
    spans["parse"] = round(time.monotonic() - started, 3)
    if outcome.exception is None and outcome.success and outcome.result is not None:
        _Parsed.key, _Parsed.manifest = key, outcome.result
        _share_parse(request)
    else:  # a broken project: no manifest; the command itself parses again and reports the error
        _Parsed.key, _Parsed.manifest = None, None
    return _Parsed.manifest


def run_request(request: DbtRequest) -> DbtReply:
    """Parse if needed, run the request's commands, release DuckDB; summarize the last command."""
    from .dbt_rules import violated_rules
    from .transform import release_duckdb, summarize

    # the request's environment is this process's own: the worker was started with it (dbt_worker.py)
    if request.workdir is not None:
        request.workdir.mkdir(parents=True, exist_ok=True)
        os.chdir(request.workdir)
    spans: dict[str, float] = {}
    violated: dict[str, str] = {}
    try:
        manifest = _manifest(request, spans)
        if not request.commands:
            return DbtReply("parsed", spans=spans)
        from dbt.cli.main import dbtRunner

        for words, extra in request.commands:
            started = time.monotonic()
            outcome = dbtRunner(manifest=manifest).invoke([*words, *request.common_args, *extra])
            spans[" ".join(words)] = round(time.monotonic() - started, 3)
            if outcome.exception is not None or not outcome.success:
                failed: Any = outcome.result  # a RunExecutionResult: name the checks its failed tests found
                if outcome.exception is None and failed is not None and words[0] != "run-operation":
                    violated = violated_rules(dbtRunner(manifest=manifest), request.common_args, list(failed.results))
                break
    finally:
        started = time.monotonic()
        release_duckdb()
        spans["release"] = round(time.monotonic() - started, 3)
    if outcome.exception is not None:
        # the project itself is broken (parse or compile error): permanent, recorded as a failed run
        return DbtReply("failed", error=f"dbt could not run: {outcome.exception}"[:4000], spans=spans)
    result: Any = outcome.result  # a RunExecutionResult for the commands sent here
    results = result.results if result is not None else []
    if words[0] == "run-operation":  # the last command run was a macro that failed (or the only one)
        messages = "; ".join(str(r.message) for r in results if getattr(r, "message", None))
        messages = messages or "see the dbt log in HOME/dbt/logs"  # e.g. the warehouse could not be opened
        error = None if outcome.success else f"dbt run-operation {' '.join(extra[:1])} failed: {messages}"[:4000]
        return DbtReply("failed" if error else "success", error=error, spans=spans)
    result = summarize(results, violated)
    error = result.error
    if not outcome.success and result.status == "success":  # dbt failed without a failing node
        error = f"dbt {' '.join(words)} failed (see the dbt log in HOME/dbt/logs)"
    return DbtReply(
        "failed" if error else "success", result.tests_passed, result.tests_failed, result.models_built, error, spans
    )


def serve(requests: Any, replies: Any) -> None:
    """The worker's loop: receive a request, send its reply, until a pipe closes or None arrives (the
    pipeline process stopped while dbt worked: its reply has nobody to go to)."""
    while True:
        try:
            request = requests.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        try:
            reply = run_request(request)
        except Exception as exc:
            reply = DbtReply("crashed", error=f"{type(exc).__name__}: {exc}"[:4000])
        try:
            replies.send(reply)
        except OSError:  # BrokenPipeError: the pipeline process is gone
            return


def main(argv: list[str]) -> None:
    """``python -m retail_pipeline.dbt_session REQUESTS_FD REPLIES_FD`` (started by :mod:`.dbt_worker`)."""
    from multiprocessing.connection import Connection

    serve(Connection(int(argv[0]), writable=False), Connection(int(argv[1]), readable=False))


if __name__ == "__main__":
    import sys

    # run the module under its own name, so the replies it pickles name retail_pipeline.dbt_session
    from retail_pipeline.dbt_session import main as _main

    _main(sys.argv[1:])
