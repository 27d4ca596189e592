"""A bucket on Cloud Storage (google-cloud-storage), or on the GCS emulator / strict gateway.

The client is made by :mod:`.google_clients` from the settings: Application Default Credentials in
GCP (workload identity on Cloud Functions), the process's identity on the emulator chain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from ..ports import ObjectInfo, PreconditionFailed
from .lazy import LazyClient


def _info(blob: Any) -> ObjectInfo:
    return ObjectInfo(
        bucket=blob.bucket.name,
        name=blob.name,
        generation=int(blob.generation),
        size=int(blob.size or 0),
        updated=blob.updated,
        content_type=blob.content_type or "application/octet-stream",
        md5_hash=blob.md5_hash or "",
        metadata=dict(blob.metadata or {}),
    )


class GcsStore:
    """One Cloud Storage bucket behind the ObjectStore port."""

    def __init__(
        self,
        bucket: str,
        client: Any = None,
        *,
        client_factory: Callable[[], Any] | None = None,
        location: str = "EU",
        timeout: float = 120.0,
    ) -> None:
        self.bucket = bucket
        self._client = LazyClient(client, client_factory)
        self.location = location
        self.timeout = timeout

    @property
    def client(self) -> Any:
        return self._client.get()

    def _bucket(self) -> Any:
        return self.client.bucket(self.bucket)

    def provision(self) -> None:
        """Create the bucket if it does not exist (the emulator chain; Terraform does it in GCP)."""
        from google.api_core.exceptions import Conflict

        if self.client.lookup_bucket(self.bucket, timeout=self.timeout) is None:
            try:
                self.client.create_bucket(self.bucket, location=self.location, timeout=self.timeout)
            except Conflict:
                pass

    def uri(self, name: str) -> str:
        return f"gs://{self.bucket}/{name}"

    def put(
        self,
        name: str,
        data: bytes | Path,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        if_generation_match: int | None = None,
    ) -> ObjectInfo:
        """Upload one object (GCS makes the new generation visible atomically); with
        ``if_generation_match`` Cloud Storage applies the write only if the generation holds (412 otherwise)."""
        from google.api_core import exceptions

        blob = self._bucket().blob(name)
        blob.metadata = dict(metadata or {})
        kwargs = {"content_type": content_type, "timeout": self.timeout, "if_generation_match": if_generation_match}
        try:
            if isinstance(data, (bytes, bytearray)):
                blob.upload_from_string(bytes(data), **kwargs)
            else:
                blob.upload_from_filename(str(data), **kwargs)
        except exceptions.PreconditionFailed as exc:
            raise PreconditionFailed(f"{self.uri(name)}: generation is not {if_generation_match}") from exc
        return _info(blob)

    def stat(self, name: str) -> ObjectInfo | None:
        blob = self._bucket().get_blob(name, timeout=self.timeout)
        return _info(blob) if blob is not None else None

    def read_bytes(self, name: str) -> bytes:
        data: bytes = self._bucket().blob(name).download_as_bytes(timeout=self.timeout)
        return data

    def download(self, name: str, folder: Path) -> Path:
        """Copy the object into ``folder`` (keeping its base name) and return the copy's path."""
        target = Path(folder) / PurePosixPath(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        self._bucket().blob(name).download_to_filename(str(target), timeout=self.timeout)
        return target

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for blob in self.client.list_blobs(self.bucket, prefix=prefix or None, timeout=self.timeout):
            yield _info(blob)

    def delete(self, name: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._bucket().blob(name).delete(timeout=self.timeout)
        except NotFound:
            pass

    def rewrite(self, name: str) -> ObjectInfo:
        """Rewrite the object onto itself: Cloud Storage makes a new generation with the same bytes,
        content type and metadata (objects.rewrite, in as many calls as the service asks for)."""
        bucket = self._bucket()
        source = bucket.get_blob(name, timeout=self.timeout)
        if source is None:
            raise FileNotFoundError(self.uri(name))
        target = bucket.blob(name)
        token = None
        while True:
            token, _done, _total = target.rewrite(
                source, token=token, timeout=self.timeout, if_source_generation_match=source.generation
            )
            if token is None:
                break
        target.reload(timeout=self.timeout)
        return _info(target)
