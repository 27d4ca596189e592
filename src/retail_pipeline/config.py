"""Settings: the one way configuration enters the pipeline.

Parsed once, at the edge (the CLI, a function's first event, a test), from flags and the
environment into typed, frozen objects that are passed down. Nothing in the package writes
``os.environ``; a child process (a function server, the dbt job) gets an environment built by
:meth:`Settings.to_env`, the exact inverse of :meth:`Settings.from_env`. (The one place that sets
it is a dbt worker forked from :mod:`.dbt_forkserver`: once, before dbt runs, to the environment it
was sent, as ``exec`` would.)

URL-style values pick the adapters (one parser per URL kind, in :mod:`retail_pipeline.urls`):
``gs://bucket`` or a local folder; ``duckdb:///path`` or ``bigquery://project/dataset_prefix``;
``local`` (a spool folder under the home) or ``pubsub://project/topic``; ``dbt`` (in-process) or
``cloudrun://project/region/job``; reports ``gs://bucket/prefix/`` or a folder (empty: none).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .urls import (
    BucketUrl,
    BusUrl,
    ReportsUrl,
    SettingError,
    TransformUrl,
    WarehouseUrl,
    parse_bucket,
    parse_bus,
    parse_reports,
    parse_transform,
    parse_warehouse,
)

PREFIX = "RETAIL_PIPELINE_"
DEFAULT_TOPIC = "partition-loaded"  #: the topic name, here and in terraform/pubsub.tf
DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt"
#: variables of this process that a child gets only through Settings.to_env()
_CONFIG_VARS = ("STORAGE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT")


def number_setting(environ: Mapping[str, str], name: str, default: float, kind: type = int) -> Any:
    """The variable ``name`` as a number of ``kind`` (default when unset); a value that is not one, or
    is negative, is a SettingError naming the variable."""
    text = environ.get(name)
    if not text:
        return kind(default)
    try:
        value = kind(text)
    except ValueError:
        raise SettingError(f"{name}={text!r}: not a{'n integer' if kind is int else ' number'}") from None
    if value < 0:
        raise SettingError(f"{name}={text!r}: must not be negative")
    return value


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
    def from_env(cls, environ: Mapping[str, str]) -> Limits:
        default = cls()
        return cls(
            **{
                f.name: number_setting(environ, f"{PREFIX}{f.name.upper()}", getattr(default, f.name))
                for f in fields(cls)
            }
        )

    def to_env(self) -> dict[str, str]:
        return {f"{PREFIX}{f.name.upper()}": str(getattr(self, f.name)) for f in fields(self)}


FAULT_POINTS = {
    "ingest.start": "an ingest delivery, before anything is read",
    "ingest.partition": "ingest, after the first lake partition is written",
    "load.start": "a load delivery, before anything is loaded",
    "load.after_job": "a load, after the staging load job is done and before the transaction runs",
    "load.publish": "a load, after the warehouse commit and before the message is published",
    "transform.start": "a transform delivery, before the fan-in check",
    "transform.after_claim": "a transform, after the claim is won and before dbt starts",
    "retract.publish": "a deleted landing object's retraction, after the warehouse commit and before the rebuild message",
}


@dataclass(frozen=True)
class Faults:
    """Fault injection for tests (see faults.py): points that fail on their first attempt."""

    crash: tuple[str, ...] = ()  #: fault points, e.g. ('ingest.partition', 'load.publish')
    state: Path = Path(".retail/faults")  #: folder remembering which points already failed

    def __post_init__(self) -> None:
        unknown = [p for p in self.crash if p not in FAULT_POINTS]
        if unknown:
            raise ValueError(
                f"unknown fault point(s) {', '.join(unknown)}; the known ones are: " + ", ".join(FAULT_POINTS)
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str], home: Path) -> Faults:
        crash = tuple(p for p in environ.get(f"{PREFIX}CRASH", "").split(",") if p)
        return cls(crash=crash, state=Path(environ.get(f"{PREFIX}FAULT_STATE") or home / "faults"))

    def to_env(self) -> dict[str, str]:
        return {f"{PREFIX}CRASH": ",".join(self.crash), f"{PREFIX}FAULT_STATE": str(self.state)}


@dataclass(frozen=True)
class Endpoints:
    """Where the Google clients go. None: Google Cloud with Application Default Credentials; a URL:
    an emulator, or the strict IAM gateway in front of one (the emulator chain)."""

    storage: str | None = None  #: http://host:port of a Cloud Storage JSON API
    bigquery: str | None = None  #: http://host:port of a BigQuery REST API
    pubsub: str | None = None  #: host:port of a Pub/Sub emulator (gRPC, plaintext)
    run_admin: str | None = None  #: http://host:port of a Cloud Run Admin API stand-in
    project: str | None = None  #: default project id for the clients

    ENV = {
        "storage": "STORAGE_EMULATOR_HOST",
        "bigquery": "BIGQUERY_EMULATOR_HOST",
        "pubsub": "PUBSUB_EMULATOR_HOST",
        "run_admin": f"{PREFIX}RUN_ADMIN_ENDPOINT",
        "project": "GOOGLE_CLOUD_PROJECT",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Endpoints:
        return cls(**{name: environ.get(var) or None for name, var in cls.ENV.items()})

    def to_env(self) -> dict[str, str]:
        return {var: value for name, var in self.ENV.items() if (value := getattr(self, name))}

    @property
    def emulated(self) -> bool:
        return any((self.storage, self.bigquery, self.pubsub, self.run_admin))


@dataclass(frozen=True)
class Settings:
    """Where the pipeline's parts live and how they behave. Build with :meth:`from_env`."""

    home: Path  #: local state: bucket folders, DuckDB file, bus spool, logs
    landing: str  #: landing bucket: gs://NAME or a folder
    lake: str  #: lake bucket: gs://NAME or a folder
    warehouse: str  #: duckdb:///PATH or bigquery://PROJECT/DATASET_PREFIX
    bus: str = "local"  #: 'local' (spool under home) or pubsub://PROJECT/TOPIC
    transform: str = "dbt"  #: 'dbt' (in-process) or cloudrun://PROJECT/REGION/JOB
    bigquery_location: str = "EU"  #: location of the BigQuery datasets and jobs
    claims_bucket: str | None = None  #: bucket of transform claims (default: the lake, when on gs://)
    identity: str | None = None  #: service account this process acts as on an emulator chain
    dbt_project: Path = DBT_PROJECT  #: the dbt project folder
    max_data_age_hours: float = 0.0  #: production freshness limit of the data (0: off); dbt fails a test beyond it
    sweep_grace_seconds: int = 900  #: the sweep leaves alone what is younger (an event may still be on its way)
    #: how long one dbt run may take (the dbt job's task timeout times its attempts): the sweep calls a
    #: run stuck only after this, so it never starts a second build beside one still running
    run_timeout_seconds: int = 3600
    #: how long the transform function holds a message of a complete batch while a dbt job execution
    #: runs, waiting for it to end, before sending the message back (kept under the function's
    #: timeout; every message sent back slows Pub/Sub's push to the function)
    transform_busy_wait_seconds: int = 240
    #: where the month's Excel report goes after each successful dbt build: gs://BUCKET/PREFIX/ or a
    #: folder; empty: no report
    reports: str = ""
    limits: Limits = field(default_factory=Limits)
    faults: Faults = field(default_factory=Faults)
    endpoints: Endpoints = field(default_factory=Endpoints)

    def __post_init__(self) -> None:
        # every URL is parsed (and so checked) once, when the settings are made
        parse_bucket(self.landing), parse_bucket(self.lake)
        parse_warehouse(self.warehouse), parse_bus(self.bus), parse_transform(self.transform)
        if self.reports:
            parse_reports(self.reports)

    @classmethod
    def from_env(cls, home: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home_path = Path(home or env.get(f"{PREFIX}HOME") or ".retail").resolve()
        return cls(
            home=home_path,
            landing=env.get(f"{PREFIX}LANDING") or str(home_path / "buckets" / "landing"),
            lake=env.get(f"{PREFIX}LAKE") or str(home_path / "buckets" / "lake"),
            warehouse=env.get(f"{PREFIX}WAREHOUSE") or f"duckdb:///{home_path / 'warehouse.duckdb'}",
            bus=env.get(f"{PREFIX}BUS") or "local",
            transform=env.get(f"{PREFIX}TRANSFORM") or "dbt",
            bigquery_location=env.get(f"{PREFIX}BQ_LOCATION") or "EU",
            claims_bucket=env.get(f"{PREFIX}CLAIMS_BUCKET") or None,
            identity=env.get(f"{PREFIX}IDENTITY") or None,
            dbt_project=Path(env.get(f"{PREFIX}DBT_PROJECT") or DBT_PROJECT),
            max_data_age_hours=number_setting(env, f"{PREFIX}MAX_DATA_AGE_HOURS", 0, float),
            sweep_grace_seconds=number_setting(env, f"{PREFIX}SWEEP_GRACE_SECONDS", 900),
            run_timeout_seconds=number_setting(env, f"{PREFIX}RUN_TIMEOUT_SECONDS", 3600),
            transform_busy_wait_seconds=number_setting(env, f"{PREFIX}TRANSFORM_BUSY_WAIT_SECONDS", 240),
            reports=env.get(f"{PREFIX}REPORTS") or "",
            limits=Limits.from_env(env),
            faults=Faults.from_env(env, home_path),
            endpoints=Endpoints.from_env(env),
        )

    def to_env(self) -> dict[str, str]:
        """The environment that gives another process (a function server, the dbt job) these settings."""
        env = {
            f"{PREFIX}HOME": str(self.home),
            f"{PREFIX}LANDING": self.landing,
            f"{PREFIX}LAKE": self.lake,
            f"{PREFIX}WAREHOUSE": self.warehouse,
            f"{PREFIX}BUS": self.bus,
            f"{PREFIX}TRANSFORM": self.transform,
            f"{PREFIX}BQ_LOCATION": self.bigquery_location,
            f"{PREFIX}DBT_PROJECT": str(self.dbt_project),
            f"{PREFIX}MAX_DATA_AGE_HOURS": str(self.max_data_age_hours),
            f"{PREFIX}SWEEP_GRACE_SECONDS": str(self.sweep_grace_seconds),
            f"{PREFIX}RUN_TIMEOUT_SECONDS": str(self.run_timeout_seconds),
            f"{PREFIX}TRANSFORM_BUSY_WAIT_SECONDS": str(self.transform_busy_wait_seconds),
            **self.limits.to_env(),
            **self.faults.to_env(),
            **self.endpoints.to_env(),
        }
        if self.claims_bucket:
            env[f"{PREFIX}CLAIMS_BUCKET"] = self.claims_bucket
        if self.identity:
            env[f"{PREFIX}IDENTITY"] = self.identity
        if self.reports:
            env[f"{PREFIX}REPORTS"] = self.reports
        return env

    def with_changes(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    # -- the parsed URLs --------------------------------------------------------------------------
    @property
    def landing_url(self) -> BucketUrl:
        return parse_bucket(self.landing)

    @property
    def lake_url(self) -> BucketUrl:
        return parse_bucket(self.lake)

    @property
    def warehouse_url(self) -> WarehouseUrl:
        return parse_warehouse(self.warehouse)

    @property
    def bus_url(self) -> BusUrl:
        return parse_bus(self.bus)

    @property
    def transform_url(self) -> TransformUrl:
        return parse_transform(self.transform)

    @property
    def reports_url(self) -> ReportsUrl | None:
        """Where the month's report goes after a successful build; None when reports are off."""
        return parse_reports(self.reports) if self.reports else None

    @property
    def claims_store_url(self) -> str | None:
        """Where transform claims are made atomically: the claims bucket, else the lake when on gs://."""
        if self.claims_bucket:
            return self.claims_bucket if "://" in self.claims_bucket else f"gs://{self.claims_bucket}"
        return self.lake if self.lake_url.kind == "gcs" else None


def child_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: this one's system variables (PATH, HOME, locale, ...)
    without any configuration, plus exactly the settings' (:meth:`Settings.to_env`)."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith(PREFIX) and k not in _CONFIG_VARS}
    return {**env, **settings.to_env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
