"""A bucket as a local folder. Generations and metadata live in the folder's own hidden
``.bucket-meta/`` sub-folder, which listings skip: everything written for a bucket stays inside
the folder the user named."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ..ports import ObjectInfo, PreconditionFailed

META_DIR = ".bucket-meta"

_lock = threading.Lock()


@contextmanager
def _bucket_lock(meta_root: Path) -> Iterator[None]:
    """One writer at a time per bucket, across threads and processes (a precondition check and the
    write it guards are one step, as in Cloud Storage)."""
    meta_root.mkdir(parents=True, exist_ok=True)
    with _lock, open(meta_root / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class FolderStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        self.meta_root = self.root / META_DIR
        self.bucket = self.root.name

    def provision(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def uri(self, name: str) -> str:
        return (self.root / name).as_uri()

    def _path(self, name: str) -> Path:
        segments = name.split("/")
        if not name or any(seg in ("", ".", "..") for seg in segments[:-1]) or segments[-1] in ("", ".", ".."):
            raise ValueError(f"object name {name!r} has empty, '.' or '..' segments, which a folder bucket cannot hold")
        longest = max(len(seg.encode()) for seg in segments)
        if longest > 250:
            raise ValueError(
                f"object name is too long for a folder bucket: a segment of {longest} bytes "
                "(the limit is 250; Cloud Storage allows 1,024 bytes in all)"
            )
        path = (self.root / name).resolve()
        if self.root not in path.parents:
            raise ValueError(f"object name {name!r} escapes the bucket folder")
        if segments[0] == META_DIR:
            raise ValueError(f"object names under {META_DIR}/ are reserved for the folder bucket's own records")
        return path

    def _meta_path(self, name: str) -> Path:
        return self.meta_root / (name + ".json")

    def put(
        self,
        name: str,
        data: bytes | Path,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        if_generation_match: int | None = None,
    ) -> ObjectInfo:
        """Write atomically; ``if_generation_match`` is checked and applied under one lock, as GCS does."""
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        md5 = hashlib.md5()
        size = 0
        with os.fdopen(fd, "wb") as out:
            if isinstance(data, (bytes, bytearray)):
                out.write(data)
                md5.update(data)
                size = len(data)
            else:
                with open(data, "rb") as src:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                        md5.update(chunk)
                        size += len(chunk)
        with _bucket_lock(self.meta_root):
            previous = self.stat(name)
            if if_generation_match is not None and (previous.generation if previous else 0) != if_generation_match:
                os.unlink(tmp)
                raise PreconditionFailed(f"{self.uri(name)}: generation is not {if_generation_match}")
            generation = max(time.time_ns() // 1000, (previous.generation + 1) if previous else 0)
            info = ObjectInfo(
                bucket=self.bucket,
                name=name,
                generation=generation,
                size=size,
                updated=datetime.now(UTC),
                content_type=content_type,
                md5_hash=base64.b64encode(md5.digest()).decode(),
                metadata=dict(metadata or {}),
            )
            meta = self._meta_path(name)
            meta.parent.mkdir(parents=True, exist_ok=True)
            meta_tmp = meta.with_name(meta.name + ".tmp")
            meta_tmp.write_text(json.dumps(_to_json(info)))
            os.replace(tmp, path)
            os.replace(meta_tmp, meta)
        return info

    def stat(self, name: str) -> ObjectInfo | None:
        try:
            path = self._path(name)
        except ValueError:
            return None
        if not path.is_file():
            return None
        try:
            raw = json.loads(self._meta_path(name).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            st = path.stat()  # a file copied in by hand: its mtime is its generation
            return ObjectInfo(
                self.bucket, name, st.st_mtime_ns // 1000, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)
            )
        return _from_json(raw)

    def read_bytes(self, name: str) -> bytes:
        return self._path(name).read_bytes()

    def download(self, name: str, folder: Path | None = None) -> Path:
        """The object's own file: a folder bucket needs no copy."""
        path = self._path(name)
        if not path.is_file():
            raise FileNotFoundError(self.uri(name))
        return path

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(self.root):
            if dirpath == str(self.root) and META_DIR in dirnames:
                dirnames.remove(META_DIR)
            dirnames.sort()
            for filename in sorted(filenames):
                if filename.startswith(".tmp-"):
                    continue
                name = os.path.relpath(os.path.join(dirpath, filename), self.root).replace(os.sep, "/")
                if name.startswith(prefix):
                    info = self.stat(name)
                    if info is not None:
                        yield info

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)
        self._meta_path(name).unlink(missing_ok=True)

    def rewrite(self, name: str) -> ObjectInfo:
        """A new generation with the same bytes, content type and metadata (a re-put)."""
        info = self.stat(name)
        if info is None:
            raise FileNotFoundError(self.uri(name))
        return self.put(name, self._path(name), content_type=info.content_type, metadata=info.metadata)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _to_json(info: ObjectInfo) -> dict:
    return {**info.__dict__, "updated": info.updated.isoformat()}


def _from_json(raw: dict) -> ObjectInfo:
    return ObjectInfo(**{**raw, "updated": datetime.fromisoformat(raw["updated"])})
