"""The zip guard counts what an archive really inflates to, even when its headers lie."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from retail_pipeline.zipguard import ZipLimitExceeded, inflated_size


def make_zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def forge_sizes(archive: bytes, name: str, declared: int) -> bytes:
    """Rewrite the member's uncompressed size in its local header and the central directory."""
    buf = bytearray(archive)
    info = zipfile.ZipFile(io.BytesIO(archive)).getinfo(name)
    struct.pack_into("<I", buf, info.header_offset + 22, declared)
    pos = buf.find(b"PK\x01\x02")
    while pos != -1:
        length = struct.unpack_from("<H", buf, pos + 28)[0]
        if bytes(buf[pos + 46:pos + 46 + length]) == name.encode():
            struct.pack_into("<I", buf, pos + 24, declared)
        pos = buf.find(b"PK\x01\x02", pos + 4)
    return bytes(buf)


def test_counts_the_real_inflated_size(tmp_path):
    members = {"a.xml": b"<x/>" * 1000, "b.xml": bytes(range(256)) * 50}
    path = tmp_path / "ok.zip"
    path.write_bytes(make_zip(members))
    assert inflated_size(path, 10**9) == sum(len(v) for v in members.values())


def test_stops_at_the_limit_even_when_headers_declare_small_sizes(tmp_path):
    bomb = make_zip({"xl/worksheets/sheet1.xml": b" " * (30 * 1024 * 1024)})
    forged = forge_sizes(bomb, "xl/worksheets/sheet1.xml", 1000)
    assert zipfile.ZipFile(io.BytesIO(forged)).getinfo("xl/worksheets/sheet1.xml").file_size == 1000
    path = tmp_path / "bomb.zip"
    path.write_bytes(forged)
    with pytest.raises(ZipLimitExceeded) as caught:
        inflated_size(path, 10 * 1024 * 1024)
    assert caught.value.inflated > 10 * 1024 * 1024


def test_damaged_stream_is_a_bad_zip(tmp_path):
    good = bytearray(make_zip({"a.xml": bytes(range(256)) * 400}))
    info = zipfile.ZipFile(io.BytesIO(bytes(good))).getinfo("a.xml")
    start = info.header_offset + 30 + len("a.xml")
    for i in range(start, start + 40):
        good[i] ^= 0xFF
    path = tmp_path / "bad.zip"
    path.write_bytes(bytes(good))
    with pytest.raises(zipfile.BadZipFile):
        inflated_size(path, 10**9)
