"""Helpers of the operations tests (sweep, retract, reprocess, status --check) on the embedded chain."""

from __future__ import annotations

from pathlib import Path

from retail_pipeline.config import Settings


def drive(settings: Settings) -> None:
    """Deliver every event and message of the home until idle (as `run` and `serve` do)."""
    from retail_pipeline import context
    from retail_pipeline.cli_ops import drive as drive_home

    ctx = context.Context(settings)
    context.use(ctx)
    try:
        drive_home(ctx, False, lambda _m: None, timeout=600)
    finally:
        context.use(None)


def analytics(settings: Settings) -> dict[str, list[tuple]]:
    """Every table of the analytics schema, sorted, without the columns that name the dbt run."""
    import duckdb

    assert settings.warehouse_url.path is not None
    con = duckdb.connect(str(settings.warehouse_url.path), read_only=True)
    try:
        out = {}
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'analytics' AND table_type = 'BASE TABLE'"
            ).fetchall()
        ]
        for name in sorted(names):
            cols = [
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'analytics' AND table_name = ? "
                    "ORDER BY ordinal_position",
                    [name],
                ).fetchall()
                if r[0]
                not in (
                    "dbt_invocation_id",
                    "transform_batch_id",
                    "batch_id",
                    "source_uri",
                    "source_generation",
                    "ingested_at",
                )
            ]
            rows = con.execute(
                f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM analytics."{name}"'
            ).fetchall()
            out[name] = sorted(rows, key=repr)
        return out
    finally:
        con.close()


def sample(path: Path, rows: int, seed: int) -> Path:
    from retail_pipeline.sample import write_sample

    write_sample(path, rows=rows, seed=seed)
    return path
