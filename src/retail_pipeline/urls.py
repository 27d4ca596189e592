"""One parser per kind of URL-style setting; nothing else in the package splits these strings.

- bucket: ``gs://NAME`` (Cloud Storage) or a folder (``file:///path`` or a plain path)
- warehouse: ``duckdb:///PATH`` or ``bigquery://PROJECT/DATASET_PREFIX``
- bus: ``local`` or ``pubsub://PROJECT/TOPIC``
- transform: ``dbt`` or ``cloudrun://PROJECT/REGION/JOB``
- reports: ``gs://BUCKET/PREFIX/`` (a bucket and an object name prefix) or a folder
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CLOUDRUN_RE = re.compile(
    r"^cloudrun://(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])/(?P<region>[a-z]+-[a-z]+[0-9]+)/"
    r"(?P<job>[a-z]([a-z0-9-]{0,61}[a-z0-9])?)/?$"
)


class SettingError(ValueError):
    """A setting that cannot be understood; the message says what would be."""


@dataclass(frozen=True)
class BucketUrl:
    kind: Literal["gcs", "folder"]
    bucket: str  #: the bucket name (a folder's base name)
    path: Path | None = None  #: the folder, for kind 'folder'


@dataclass(frozen=True)
class WarehouseUrl:
    kind: Literal["duckdb", "bigquery"]
    path: Path | None = None  #: the DuckDB file
    project: str = ""
    prefix: str = "retail"  #: BigQuery datasets PREFIX_raw, PREFIX_pipeline, PREFIX_analytics

    @property
    def raw_dataset(self) -> str:
        return f"{self.prefix}_raw"

    @property
    def pipeline_dataset(self) -> str:
        return f"{self.prefix}_pipeline"

    @property
    def analytics_dataset(self) -> str:
        return f"{self.prefix}_analytics"


@dataclass(frozen=True)
class BusUrl:
    kind: Literal["local", "pubsub"]
    project: str = ""
    topic: str = ""


@dataclass(frozen=True)
class TransformUrl:
    kind: Literal["dbt", "cloudrun"]
    project: str = ""
    region: str = ""
    job: str = ""


@dataclass(frozen=True)
class ReportsUrl:
    store: str  #: the bucket (``gs://BUCKET``) or the folder the reports go into
    prefix: str = ""  #: object name prefix inside it (``reports/``), empty or ending with '/'

    @property
    def bucket(self) -> BucketUrl:
        return parse_bucket(self.store)

    def __str__(self) -> str:
        return f"{self.store}/{self.prefix}" if self.prefix else self.store


def parse_bucket(url: str) -> BucketUrl:
    if url.startswith("gs://"):
        name = url[len("gs://") :].strip("/")
        if not name or "/" in name:
            raise SettingError(f"bucket URL {url!r}: use gs://BUCKET (no object path)")
        return BucketUrl("gcs", name)
    if not url:
        raise SettingError("a bucket setting is empty: use gs://BUCKET or a folder")
    if "://" in url and not url.startswith("file://"):
        raise SettingError(f"bucket URL {url!r}: use gs://BUCKET, file://FOLDER or a folder")
    folder = Path(url[len("file://") :] if url.startswith("file://") else url).resolve()
    return BucketUrl("folder", folder.name, folder)


def parse_warehouse(url: str) -> WarehouseUrl:
    if url.startswith("duckdb://"):
        path = url[len("duckdb://") :]
        path = path[1:] if path.startswith("//") else path  # duckdb:////abs/path → /abs/path
        if not path:
            raise SettingError(f"warehouse URL {url!r}: use duckdb:///PATH/TO/FILE.duckdb")
        return WarehouseUrl("duckdb", path=Path(path))
    if url.startswith("bigquery://"):
        project, _, prefix = url[len("bigquery://") :].strip("/").partition("/")
        if not project or "/" in prefix:
            raise SettingError(f"warehouse URL {url!r}: use bigquery://PROJECT/DATASET_PREFIX")
        return WarehouseUrl("bigquery", project=project, prefix=prefix or "retail")
    raise SettingError(f"unknown warehouse URL {url!r}: use duckdb:///PATH or bigquery://PROJECT/DATASET_PREFIX")


def parse_bus(url: str) -> BusUrl:
    if url == "local":
        return BusUrl("local")
    if url.startswith("pubsub://"):
        project, _, topic = url[len("pubsub://") :].strip("/").partition("/")
        if not project or "/" in topic:
            raise SettingError(f"bus URL {url!r}: use pubsub://PROJECT/TOPIC")
        from .config import DEFAULT_TOPIC

        return BusUrl("pubsub", project, topic or DEFAULT_TOPIC)
    raise SettingError(f"unknown bus {url!r}: use 'local' or pubsub://PROJECT/TOPIC")


def parse_transform(url: str) -> TransformUrl:
    if url == "dbt":
        return TransformUrl("dbt")
    match = CLOUDRUN_RE.match(url)
    if match:
        return TransformUrl("cloudrun", match["project"], match["region"], match["job"])
    if url.startswith("cloudrun://"):
        raise SettingError(
            f"bad transform URL {url!r}: expected cloudrun://PROJECT/REGION/JOB "
            "(project id, region like europe-west1, job name)"
        )
    raise SettingError(f"unknown transform {url!r}: use 'dbt' or cloudrun://PROJECT/REGION/JOB")


def parse_reports(url: str) -> ReportsUrl:
    """``gs://BUCKET/PREFIX/`` → the bucket and the prefix its objects are named under; a folder → itself."""
    if url.startswith("gs://"):
        bucket, _, prefix = url[len("gs://") :].partition("/")
        prefix = prefix.strip("/")
        parts = prefix.split("/") if prefix else []
        if not bucket or any(part in ("", ".", "..") for part in parts):
            raise SettingError(f"reports URL {url!r}: use gs://BUCKET/PREFIX/ (for example gs://my-reports/reports/)")
        return ReportsUrl(f"gs://{bucket}", f"{prefix}/" if prefix else "")
    parse_bucket(url)  # a folder: checked like a bucket folder
    return ReportsUrl(url)
