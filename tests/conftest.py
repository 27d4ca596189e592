"""Shared fixtures. Feature-specific fixtures live next to their tests."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE_XLSX = SHARED / "data" / "online_retail_reference.xlsx"

os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")

pytest_plugins = [
    "emulator_fixtures",
    "analytics_fixtures",
]  # session-scoped emulators (issue 4); shared runs (issue 13)

from helpers import run_cli  # noqa: E402
from xdist_order import CHAIN_GROUP, CHAIN_WEIGHT  # noqa: E402


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty pipeline home, and an environment that points every setting at it."""
    h = tmp_path / "home"
    for key in list(os.environ):
        if key.startswith("RETAIL_PIPELINE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RETAIL_PIPELINE_HOME", str(h))
    monkeypatch.setenv("RETAIL_PIPELINE_FAULT_STATE", str(h / "faults"))
    return h


@pytest.fixture
def settings(home: Path):
    from retail_pipeline.config import Settings

    return Settings.from_env(home)


@pytest.fixture
def ctx(settings):
    """The embedded context (folders, DuckDB, spool bus), installed for the functions."""
    from retail_pipeline import context

    c = context.Context(settings)
    context.use(c)
    yield c
    context.use(None)


@pytest.fixture(scope="session")
def small_workbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 3,000-row workbook with the real file's cell types and quirks."""
    from retail_pipeline.sample import write_sample

    path = tmp_path_factory.mktemp("wb") / "small.xlsx"
    write_sample(path, rows=3000, seed=7)
    return path


@pytest.fixture(scope="session")
def reference_workbook() -> Path:
    if not REFERENCE_XLSX.exists():
        pytest.skip(f"the reference workbook is missing: {REFERENCE_XLSX} (shared/ not laid beside the repo)")
    return REFERENCE_XLSX


@pytest.fixture(scope="session")
def reference_home(tmp_path_factory: pytest.TempPathFactory, reference_workbook: Path) -> Path:
    """A home after one clean `retail-pipeline run` of the reference workbook, shared by the session.

    Read-only for its users, except test_pipeline_e2e's repeat-run test, which runs the same file
    again at the end of the session (by design every figure and mart stays unchanged).
    """
    home = tmp_path_factory.mktemp("reference") / "home"
    run_cli(home, "run", str(reference_workbook))
    return home


@pytest.fixture(scope="session")
def embedded_reference(tmp_path_factory: pytest.TempPathFactory, small_workbook: Path) -> dict:
    """The embedded chain's summary for the small workbook: what every other chain must equal."""
    from retail_pipeline.config import Settings
    from retail_pipeline.pipeline import run_local

    home = tmp_path_factory.mktemp("embedded") / "home"
    summary = run_local(Settings.from_env(home, environ={}), [(small_workbook, "small.xlsx")])
    assert summary["ok"], summary
    return summary


#: session fixtures worth computing once: every test that uses one runs on the same xdist worker
SHARED_RUNS = ("strict_run", "emulator_run", "reference_home")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which turns the groups into scopes
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups for `pytest -n N --dist loadgroup` (what `make test` runs), and their order.

    A test that reads a shared run goes with the other readers of that run; the other emulator and
    full-size tests each go on their own (they are long); everything else stays with its module (its
    module-scoped fixtures are then made once). Groups are handed out largest first, as xdist does,
    the whole chains (marked `chain`) counted as CHAIN_WEIGHT tests each, so that they start in the
    middle and the small groups fill the gaps at the end (tests/xdist_order.py). Within a group the
    order is kept.
    """
    grouped = []
    for item in items:
        if "reference_home" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)  # it reads the full-size reference run
        shared = [name for name in SHARED_RUNS if name in getattr(item, "fixturenames", ())]
        heavy = bool(shared) or item.get_closest_marker("emulator") or item.get_closest_marker("slow")
        group = shared[0] if shared else (None if heavy else item.module.__name__ if item.module else None)
        if item.get_closest_marker("chain") and not shared:
            group = CHAIN_GROUP + item.name  # on its own, and known as long to the scheduler
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
        grouped.append((group or item.nodeid, 0 if heavy else 1, item))
    sizes = Counter(group for group, _, _ in grouped)
    first = {}
    for index, (group, _, _) in enumerate(grouped):
        first.setdefault(group, index)

    def order(entry: tuple) -> tuple:
        group, light, _ = entry
        weight = CHAIN_WEIGHT if group.startswith(CHAIN_GROUP) else sizes[group]
        return (-weight, light, first[group])

    items[:] = [item for _, _, item in sorted(grouped, key=order)]


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`loadgroup` in the order made above, the chains kept apart (tests/xdist_order.py)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist_order import ChainsApart

    config.option.loadscopereorder = False  # the order is the collection's, made above
    return ChainsApart(config, log)
