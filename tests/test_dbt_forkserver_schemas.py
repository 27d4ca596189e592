"""The dbt fork server builds the JSON schemas a parse needs before it forks (dbt_forkserver.SCHEMAS)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, os, sys
import importlib
from retail_pipeline.dbt_forkserver import CREDENTIALS, PRELOADS, SCHEMAS, build_schemas

preload, project, target = sys.argv[1], sys.argv[2], sys.argv[3]
for name in PRELOADS[preload]:
    importlib.import_module(name)
built = build_schemas((*SCHEMAS, CREDENTIALS[preload]))

import dbt_common.dataclass_schema as schemas
later = []
original = schemas.build_json_schema
def recording(cls, *args, **kwargs):
    later.append(f"{cls.__module__}.{cls.__qualname__}")
    return original(cls, *args, **kwargs)
schemas.build_json_schema = recording

from dbt.cli.main import dbtRunner
outcome = dbtRunner().invoke(["parse", "--project-dir", project, "--profiles-dir", project, "--target", sys.argv[4],
                              "--target-path", target, "--log-path", target, "--quiet", "--no-write-json"])
print(json.dumps({"built": built, "later": later, "parsed": bool(outcome.success)}))
"""


@pytest.mark.slow  # a full dbt parse in a new process, twice: it matters when dbt is upgraded
@pytest.mark.parametrize("preload, target", [("dbt", "local"), ("dbt-job", "emulator")])
def test_a_forked_child_parses_without_building_a_schema(preload, target, tmp_path):
    """Every class named is found (a dbt upgrade that moves one fails here), and a full parse of the
    project after them builds no schema of its own: the fork server's children start with all."""
    env = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, preload, str(REPO / "dbt"), str(tmp_path / "target"), target],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    from retail_pipeline.dbt_forkserver import CREDENTIALS, SCHEMAS

    assert out["parsed"]
    assert out["built"] == [*SCHEMAS, CREDENTIALS[preload]]
    assert out["later"] == []
