"""Which checks a failed ``row_rules`` data test found violated (dbt/tests/generic/row_rules.sql).

dbt reports a failed test as "Got N results" and keeps its rows nowhere (storing them would cost a
table per test and build). A ``row_rules`` test returns one row per violated check, so when one
fails, its compiled query is run once more with ``dbt show`` (on the same runner and parse, before
the warehouse is released) and the violated checks are named in the recorded error. This costs
nothing while every test passes. The dbt job (dbt/entrypoint.py) does the same for its own error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEST_NAME = "row_rules"  #: the generic test whose rows name the violated checks


def violated_rules(runner: Any, common_args: list[str] | tuple[str, ...], results: list[Any]) -> dict[str, str]:
    """``{test unique_id: "rule (N rows), ..."}`` for each failed ``row_rules`` test in ``results``;
    a test whose rows cannot be read again is left out (its error still names the test)."""
    from dbt.contracts.graph.nodes import GenericTestNode

    args = list(common_args)
    if "--target-path" in args:  # dbt show writes run_results.json too: not over the build's
        args += ["--target-path", str(Path(args[args.index("--target-path") + 1]) / "violated_rules")]
    found: dict[str, str] = {}
    for r in results:
        node = r.node
        if not (isinstance(node, GenericTestNode) and node.test_metadata.name == TEST_NAME):
            continue
        if str(r.status).split(".")[-1].lower() not in ("fail", "warn") or not node.compiled_code:
            continue
        try:  # best effort: the error names the test whatever happens here
            shown = runner.invoke(
                ["show", *args, "--inline", node.compiled_code, "--limit", "100", "--log-level", "none"]
            )
            rows = [(str(rule), int(n)) for result in shown.result.results for rule, n in result.agate_table.rows]
        except Exception:
            continue
        if shown.exception is not None or not shown.success:
            continue
        found[node.unique_id] = ", ".join(f"{rule} ({count} row{'s' * (count != 1)})" for rule, count in rows)
    return found
