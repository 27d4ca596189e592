"""A bucket on Cloud Storage (google-cloud-storage), or on the GCS emulator.

With ``STORAGE_EMULATOR_HOST`` set the client talks to the emulator with anonymous credentials;
otherwise it uses Application Default Credentials (workload identity on Cloud Functions).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..ports import ObjectInfo


def storage_client(project: str | None = None):
    """A storage client: anonymous against the emulator, ADC otherwise."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=project or os.environ.get("GOOGLE_CLOUD_PROJECT") or "local",
                              credentials=AnonymousCredentials())
    return storage.Client(project=project)


def _info(blob) -> ObjectInfo:
    return ObjectInfo(
        bucket=blob.bucket.name, name=blob.name, generation=int(blob.generation), size=int(blob.size or 0),
        updated=blob.updated, content_type=blob.content_type or "application/octet-stream",
        md5_hash=blob.md5_hash or "", metadata=dict(blob.metadata or {}),
    )


class GcsStore:
    """One Cloud Storage bucket behind the ObjectStore port."""

    def __init__(self, bucket: str, client=None, timeout: float = 120.0) -> None:
        self.bucket = bucket
        self.timeout = timeout
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = storage_client()
        return self._client

    def _bucket(self):
        return self.client.bucket(self.bucket)

    def uri(self, name: str) -> str:
        return f"gs://{self.bucket}/{name}"

    def put(self, name: str, data: bytes | Path, *, content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None, if_generation_match: int | None = None) -> ObjectInfo:
        """Upload one object (GCS makes the new generation visible atomically).

        ``if_generation_match=0`` creates the object only if it does not exist (real GCS rejects the
        upload with 412 otherwise; the GCS emulator does not enforce preconditions).
        """
        blob = self._bucket().blob(name)
        blob.metadata = dict(metadata or {})
        kwargs = {"content_type": content_type, "timeout": self.timeout, "if_generation_match": if_generation_match}
        if isinstance(data, (bytes, bytearray)):
            blob.upload_from_string(bytes(data), **kwargs)
        else:
            blob.upload_from_filename(str(data), **kwargs)
        return _info(blob)

    def stat(self, name: str) -> ObjectInfo | None:
        blob = self._bucket().get_blob(name, timeout=self.timeout)
        return _info(blob) if blob is not None else None

    def read_bytes(self, name: str) -> bytes:
        return self._bucket().blob(name).download_as_bytes(timeout=self.timeout)

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

    def ensure_bucket(self, location: str = "EU") -> None:
        """Create the bucket if it does not exist (the emulator chain; Terraform does it in GCP)."""
        from google.api_core.exceptions import Conflict

        if self.client.lookup_bucket(self.bucket, timeout=self.timeout) is None:
            try:
                self.client.create_bucket(self.bucket, location=location, timeout=self.timeout)
            except Conflict:
                pass
