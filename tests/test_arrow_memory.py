"""Arrow's memory pool commits memory as it is used, not in huge pages up front (retail_pipeline/__init__.py).

Each check runs in a fresh interpreter: the setting only works if it is in place before pyarrow loads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")

#: 64 MB through Arrow's default pool, one byte touched per page; prints the pool and the huge pages
TOUCH = """
import retail_pipeline, numpy as np, pyarrow as pa
buf = pa.allocate_buffer(64 << 20)
np.frombuffer(buf, dtype=np.uint8)[::4096] = 1
huge = [int(l.split()[1]) for l in open('/proc/self/smaps_rollup') if l.startswith('AnonHugePages')]
print(pa.default_memory_pool().backend_name, huge[0])
"""


def _python(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "MIMALLOC_ARENA_EAGER_COMMIT"}
    done = subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_importing_the_package_sets_on_demand_commit_and_keeps_a_value_already_set():
    show = "import os, retail_pipeline; print(os.environ.get('MIMALLOC_ARENA_EAGER_COMMIT'))"
    assert _python(show) == "0"
    assert _python(show, MIMALLOC_ARENA_EAGER_COMMIT="1") == "1"


@pytest.mark.skipif(
    not THP.exists() or "[madvise]" not in THP.read_text(),
    reason="needs transparent huge pages in madvise mode (/sys/kernel/mm/transparent_hugepage/enabled)",
)
def test_arrow_memory_is_not_backed_by_huge_pages_it_did_not_ask_for():
    pool, huge_kb = _python(TOUCH).split()
    assert pool == "mimalloc"  # the pool the setting is for; another default would need its own look
    assert int(huge_kb) == 0
    # the setting is what makes the difference: mimalloc's default commits eagerly, in huge pages
    pool, huge_kb = _python(TOUCH, MIMALLOC_ARENA_EAGER_COMMIT="2").split()
    assert int(huge_kb) > 0
