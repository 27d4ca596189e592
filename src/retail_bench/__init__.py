"""`retail-pipeline bench`: the project's ingest timed against the plain reads it must stay close to.

Kept out of the ``retail_pipeline`` package on purpose: the Cloud Function zips carry that
package and nothing of this one (scripts/package_functions.py). The click command
(retail_pipeline/cli_bench.py) imports it only when it runs.

- measure.py: one child process's wall time, CPU seconds and peak RSS.
- harness.py: interleaved rounds of the variants, end-to-end runs, the report and its checks.
- scale.py: the 10x procedure (ten generated workbooks, and the same rows as one CSV).
- render.py: the report as a table.
"""
