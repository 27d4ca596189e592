"""The sample generator's SpreadsheetML writer: an .xlsx written directly, with shared strings and
Excel date-times, which is fast enough for full-size files."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

_EPOCH = datetime(1899, 12, 30)
_CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>
<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>
{sheets}</Types>"""
_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>
</Relationships>"""
_STYLES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
<numFmts count="1"><numFmt numFmtId="164" formatCode="dd/mm/yyyy hh:mm"/></numFmts>
<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>
<fills count="1"><fill><patternFill patternType="none"/></fill></fills>
<borders count="1"><border/></borders>
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>
<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>
<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>
</styleSheet>"""


def _write_xlsx(out: Path, headers: list[str], sheets: list[tuple[str, dict]]) -> None:
    strings: dict[str, int] = {}

    def sst(value: str) -> int:
        idx = strings.get(value)
        if idx is None:
            idx = strings[value] = len(strings)
        return idx

    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for number, (_, cols) in enumerate(sheets, start=1):
            with zf.open(f"xl/worksheets/sheet{number}.xml", "w", force_zip64=True) as raw:
                f = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                _write_sheet(f, headers, cols, sst)
                f.flush()
                f.detach()
        sst_xml = io.StringIO()
        sst_xml.write(
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="http://schemas.openxmlformats.org/'
            f'spreadsheetml/2006/main" count="{len(strings)}" uniqueCount="{len(strings)}">'
        )
        for value in strings:
            space = ' xml:space="preserve"' if value != value.strip() else ""
            sst_xml.write(f"<si><t{space}>{escape(value)}</t></si>")
        sst_xml.write("</sst>")
        zf.writestr("xl/sharedStrings.xml", sst_xml.getvalue())
        zf.writestr(
            "[Content_Types].xml",
            _CONTENT_TYPES.format(
                sheets="".join(
                    f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/vnd.openxmlformats-officedocument.'
                    f'spreadsheetml.worksheet+xml"/>\n'
                    for i in range(1, len(sheets) + 1)
                )
            ),
        )
        zf.writestr("_rels/.rels", _RELS)
        zf.writestr("xl/styles.xml", _STYLES)
        zf.writestr(
            "xl/workbook.xml",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="http://schemas.openxmlformats.org/'
            'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            "<sheets>"
            + "".join(
                f'<sheet name="{escape(name)}" sheetId="{i}" r:id="rId{i}"/>'
                for i, (name, _) in enumerate(sheets, start=1)
            )
            + "</sheets></workbook>",
        )
        zf.writestr(
            "xl/_rels/workbook.xml.rels",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="http://schemas.'
            'openxmlformats.org/package/2006/relationships">'
            + "".join(
                f'<Relationship Id="rId{i}" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                f'relationships/worksheet" Target="worksheets/sheet{i}.xml"/>'
                for i in range(1, len(sheets) + 1)
            )
            + f'<Relationship Id="rId{len(sheets) + 1}" Type="http://schemas.openxmlformats.org/officeDocument/'
            '2006/relationships/styles" Target="styles.xml"/>'
            + f'<Relationship Id="rId{len(sheets) + 2}" Type="http://schemas.openxmlformats.org/officeDocument/'
            '2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        )
    tmp.replace(out)


def _cell(ref: str, value, sst) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return f'<c r="{ref}" t="s"><v>{sst(value)}</v></c>'
    if isinstance(value, datetime):
        serial = (value - _EPOCH).total_seconds() / 86400
        return f'<c r="{ref}" s="1"><v>{serial!r}</v></c>'
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return f'<c r="{ref}"><v>{int(v) if v.is_integer() else repr(v)}</v></c>'
    return f'<c r="{ref}"><v>{int(value)}</v></c>'


def _write_sheet(f, headers: list[str], cols: dict, sst) -> None:
    letters = "ABCDEFGH"
    f.write(
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="http://schemas.openxmlformats.org/'
        'spreadsheetml/2006/main"><sheetData>'
    )
    f.write('<row r="1">' + "".join(_cell(f"{letters[i]}1", h, sst) for i, h in enumerate(headers)) + "</row>")
    columns = [cols[k] for k in ("invoice", "stock", "desc", "qty", "when", "price", "customer", "country")]
    buf = []
    for r, values in enumerate(zip(*columns), start=2):
        buf.append(
            f'<row r="{r}">' + "".join(_cell(f"{letters[i]}{r}", v, sst) for i, v in enumerate(values)) + "</row>"
        )
        if len(buf) >= 5000:
            f.write("".join(buf))
            buf.clear()
    f.write("".join(buf))
    f.write("</sheetData></worksheet>")
