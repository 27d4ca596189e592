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
        if bytes(buf[pos + 46 : pos + 46 + length]) == name.encode():
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


def test_a_workbook_with_forged_sizes_is_rejected_before_it_is_parsed(tmp_path):
    """The bomb's headers claim 1,000 bytes; the ingest still measures 30 MB and rejects it."""
    from helpers import good_row, write_workbook
    from retail_pipeline.adapters.local_store import FolderStore
    from retail_pipeline.config import Limits
    from retail_pipeline.ingest import ingest_object

    book = write_workbook(tmp_path / "b.xlsx", [good_row()])
    members = {i.filename: zipfile.ZipFile(book).read(i.filename) for i in zipfile.ZipFile(book).infolist()}
    sheet = "xl/worksheets/sheet1.xml"
    members[sheet] = members[sheet].replace(b"<sheetData>", b"<sheetData>" + b" " * (30 * 1024 * 1024))
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(forge_sizes(make_zip(members), sheet, 1000))
    result = ingest_object(
        path,
        "bomb.xlsx",
        "file:///bomb.xlsx",
        1,
        FolderStore(tmp_path / "lake"),
        Limits(max_uncompressed_bytes=10 * 1024 * 1024),
    )
    assert (result.state, result.error_code) == ("rejected", "decompressed_too_large")
