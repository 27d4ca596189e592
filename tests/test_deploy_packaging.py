"""scripts/package_functions.py: one deployable zip per function, with the shared package inside."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS = ("ingest", "load", "transform", "sweep")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundles")
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "package_functions.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for name in FUNCTIONS:
        assert f"{name}: " in proc.stdout
    return out


@pytest.mark.parametrize("function", FUNCTIONS)
def test_zip_holds_main_requirements_and_the_shared_package(bundles, function):
    with zipfile.ZipFile(bundles / f"{function}.zip") as zf:
        names = set(zf.namelist())
        assert zf.read("main.py") == (REPO / "functions" / function / "main.py").read_bytes()
        assert zf.read("requirements.txt") == (REPO / "functions" / function / "requirements.txt").read_bytes()
        assert zf.read("retail_pipeline/schema.py") == (REPO / "src" / "retail_pipeline" / "schema.py").read_bytes()
    package_files = {
        p.relative_to(REPO / "src").as_posix()
        for p in (REPO / "src" / "retail_pipeline").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert package_files <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert {"retail_pipeline/stages.py", "retail_pipeline/adapters/__init__.py"} <= names


@pytest.mark.parametrize("function", FUNCTIONS)
def test_zip_holds_no_bench_code(bundles, function):
    """The bench harness (src/retail_bench) stays out of the deployed functions; only the thin click
    command that imports it when `retail-pipeline bench` runs is part of the shared package."""
    bench_files = [p for p in (REPO / "src" / "retail_bench").rglob("*.py") if "__pycache__" not in p.parts]
    assert bench_files, "the bench harness is not where this test looks for it"
    with zipfile.ZipFile(bundles / f"{function}.zip") as zf:
        names = zf.namelist()
        assert [n for n in names if not n.startswith("retail_pipeline/")] == ["main.py", "requirements.txt"]
        bundled = {n: zf.read(n) for n in names if n.endswith(".py")}
    for path in bench_files:  # no harness module, under any name
        assert path.read_bytes() not in bundled.values(), path.name
    for marker in (b"os.wait4", b"def run_readers", b"plain_fastexcel.py", b"def render_readers"):
        assert not [n for n, data in bundled.items() if marker in data], marker


def test_zips_are_deterministic(bundles, tmp_path):
    again = tmp_path / "again"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "package_functions.py"), "--out", str(again)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    for function in FUNCTIONS:
        assert (again / f"{function}.zip").read_bytes() == (bundles / f"{function}.zip").read_bytes()


@pytest.mark.parametrize("function", FUNCTIONS)
def test_entry_point_imports_from_the_unpacked_bundle(bundles, function, tmp_path):
    """What Cloud Functions does: unpack, put the folder first on sys.path, import main."""
    with zipfile.ZipFile(bundles / f"{function}.zip") as zf:
        zf.extractall(tmp_path)
    code = (
        "import main, retail_pipeline.schema as s, retail_pipeline.stages; "
        f"print(callable(main.{function})); print(s.__file__)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "RETAIL_PIPELINE_HOME": str(tmp_path / "home")},
    )
    assert proc.returncode == 0, proc.stderr
    is_callable, schema_file = proc.stdout.split()
    assert is_callable == "True"
    assert Path(schema_file).resolve().is_relative_to(tmp_path.resolve()), schema_file


def test_missing_requirements_is_an_error(tmp_path):
    functions = tmp_path / "functions" / "broken"
    functions.mkdir(parents=True)
    (functions / "main.py").write_text("x = 1\n")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "package_functions.py"),
            "--functions",
            str(tmp_path / "functions"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "requirements.txt" in proc.stderr
    assert not (tmp_path / "out" / "broken.zip").exists()
