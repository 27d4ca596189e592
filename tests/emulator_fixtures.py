"""Session fixtures that start the GCS, Pub/Sub and BigQuery emulators once for every test that needs them.

Loaded from conftest.py (``pytest_plugins``). Where a stand-in is absent, the tests that need it
skip with a reason naming it; on the project's machine type none are absent.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory):
    """The three emulators, on free localhost ports, for the whole session."""
    from retail_pipeline.emulators import Emulators, missing

    absent = missing()
    if absent:
        pytest.skip("local stand-ins missing: " + "; ".join(absent))
    emu = Emulators(tmp_path_factory.mktemp("emulators")).start(timeout=120)
    yield emu
    emu.stop()


@pytest.fixture
def emulator_env(emulators, monkeypatch: pytest.MonkeyPatch):
    """This test's environment points the Google clients at the emulators."""
    for key, value in emulators.env().items():
        monkeypatch.setenv(key, value)
    return emulators


@pytest.fixture
def unique_name(request) -> str:
    """A short name unique to this test (buckets and datasets are shared by the session's emulators)."""
    import hashlib

    return "t" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]
