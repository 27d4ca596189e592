"""The pipeline's shared package: every entry point (the CLI, the functions, the dbt job's report
step) imports it before pyarrow.

One process-wide setting lives here because it must be in place before pyarrow loads. Arrow's
default memory pool is mimalloc, and mimalloc commits its arenas eagerly by default. On a kernel
that backs such memory with transparent huge pages on request (``madvise``, as on this 2-core
machine type), the first touch of those pages took 4 to 117 ms for 48 to 100 MB, as the kernel
compacted memory to find 2 MB pages. Committing on demand gives 4 KB pages: 22-38 ms for 100 MB.

Measured with ``MIMALLOC_ARENA_EAGER_COMMIT=0`` (docs/benchmarks.md, 2026-12-02 evening):
- ingest of the reference workbook: 0.19 s less wall and 0.35 CPU-s less, median of ten interleaved
  rounds, each of them faster; the same peak;
- ingest of the 5.4M-row CSV: 6.79 s against 7.35 s, with a peak of 374 MB against 406 MB.

A value already in the environment is kept.
"""

import os

os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")
