"""Settings: where the buckets, the warehouse and the bus are, and the input limits.

Every setting comes from one environment variable (or a CLI option that sets it). Defaults put
everything under the home folder: the embedded stand-ins. URL-style values pick the adapter:
``gs://bucket`` or a local folder; ``duckdb:///path`` or ``bigquery://project/dataset``;
``local`` (a spool folder under the home) or ``pubsub://project/topic``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass(frozen=True)
class Limits:
    """Bounds a hostile or broken file cannot get around; each is a rejection or quarantine reason."""

    max_object_bytes: int = 200 * 1024**2  #: landing object size
    max_uncompressed_bytes: int = 1024**3  #: total inflated size of an xlsx's zip members
    max_rows: int = 20_000_000  #: data rows per source
    max_cell_chars: int = 4_000  #: characters in one text cell
    max_abs_quantity: int = 10_000_000  #: |quantity| per line
    max_abs_unit_price: int = 10_000_000  #: |unit price| per line

    @classmethod
    def from_env(cls) -> "Limits":
        return cls(**{f.name: _int(f"RETAIL_PIPELINE_{f.name.upper()}", f.default) for f in fields(cls)})


@dataclass(frozen=True)
class Settings:
    """Where the pipeline's parts live. Build with :meth:`from_env`."""

    home: Path  #: local state: bucket folders, DuckDB file, bus spool, logs
    landing: str  #: landing bucket: gs://NAME or a folder
    lake: str  #: lake bucket: gs://NAME or a folder
    warehouse: str  #: duckdb:///PATH or bigquery://PROJECT/DATASET_PREFIX
    bus: str  #: 'local' (spool under home) or pubsub://PROJECT/TOPIC
    transform: str  #: 'dbt' (in-process) or cloudrun://PROJECT/REGION/JOB
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls, home: str | os.PathLike | None = None) -> "Settings":
        home_path = Path(home or os.environ.get("RETAIL_PIPELINE_HOME") or ".retail").resolve()
        env = os.environ.get
        return cls(
            home=home_path,
            landing=env("RETAIL_PIPELINE_LANDING") or str(home_path / "buckets" / "landing"),
            lake=env("RETAIL_PIPELINE_LAKE") or str(home_path / "buckets" / "lake"),
            warehouse=env("RETAIL_PIPELINE_WAREHOUSE") or f"duckdb:///{home_path / 'warehouse.duckdb'}",
            bus=env("RETAIL_PIPELINE_BUS") or "local",
            transform=env("RETAIL_PIPELINE_TRANSFORM") or "dbt",
            limits=Limits.from_env(),
        )

    def as_env(self) -> dict[str, str]:
        """The environment that makes another process (a function server) use these settings."""
        env = {
            "RETAIL_PIPELINE_HOME": str(self.home),
            "RETAIL_PIPELINE_LANDING": self.landing,
            "RETAIL_PIPELINE_LAKE": self.lake,
            "RETAIL_PIPELINE_WAREHOUSE": self.warehouse,
            "RETAIL_PIPELINE_BUS": self.bus,
            "RETAIL_PIPELINE_TRANSFORM": self.transform,
        }
        for f in fields(Limits):
            env[f"RETAIL_PIPELINE_{f.name.upper()}"] = str(getattr(self.limits, f.name))
        return env
