"""A deterministic generator of workbooks shaped like the UCI Online Retail data.

Same cell types as the real file (numeric InvoiceNo for plain invoices and text for 'C'/'A'
ones; numeric StockCode when all digits, text otherwise; numeric CustomerID or blank; Excel
date-times) and the same quirks (cancellations, bad-debt adjustments, stock adjustments with
lowercase notes, zero prices, postage and fee codes, trailing spaces, several descriptions per
code, exact duplicate rows, the 80,995 pair). The xlsx is written directly as SpreadsheetML with
shared strings, which is fast enough for full-size files.
"""

from __future__ import annotations

import io
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pyarrow as pa

COUNTRIES = [
    "Australia",
    "Austria",
    "Bahrain",
    "Belgium",
    "Brazil",
    "Canada",
    "Channel Islands",
    "Cyprus",
    "Czech Republic",
    "Denmark",
    "EIRE",
    "European Community",
    "Finland",
    "France",
    "Germany",
    "Greece",
    "Hong Kong",
    "Iceland",
    "Israel",
    "Italy",
    "Japan",
    "Lebanon",
    "Lithuania",
    "Malta",
    "Netherlands",
    "Norway",
    "Poland",
    "Portugal",
    "RSA",
    "Saudi Arabia",
    "Singapore",
    "Spain",
    "Sweden",
    "Switzerland",
    "USA",
    "United Arab Emirates",
    "Unspecified",
]
ADJECTIVES = [
    "WHITE",
    "RED",
    "PINK",
    "BLUE",
    "GREEN",
    "IVORY",
    "VINTAGE",
    "RETRO",
    "JUMBO",
    "SMALL",
    "LARGE",
    "SET OF 3",
    "REGENCY",
    "PAPER",
    "GLASS",
    "WOODEN",
    "HEART",
    "STAR",
    "SPOTTY",
    "FLORAL",
]
NOUNS = [
    "T-LIGHT HOLDER",
    "LANTERN",
    "BAG",
    "MUG",
    "CAKE STAND",
    "BUNTING",
    "CUSHION COVER",
    "DOORMAT",
    "NAPKINS",
    "CANDLE",
    "CLOCK",
    "TEACUP AND SAUCER",
    "PHOTO FRAME",
    "LUNCH BOX",
    "ALARM CLOCK",
    "HOT WATER BOTTLE",
    "CHRISTMAS DECORATION",
    "STORAGE JAR",
    "PURSE",
    "WALL ART",
]
NOTES = [
    "damaged",
    "lost",
    "check",
    "?",
    "missing",
    "wet damaged",
    "thrown away",
    "found",
    "counted",
    "mixed up",
    "wrongly marked",
    "sold as set on dotcom",
    "amazon",
    None,
]
SPECIALS = [  # code, description, price range, share of lines
    ("POST", "POSTAGE", (5.0, 40.0), 0.0023),
    ("DOT", "DOTCOM POSTAGE", (50.0, 900.0), 0.0013),
    ("M", "Manual", (0.5, 300.0), 0.0011),
    ("C2", "CARRIAGE", (25.0, 50.0), 0.00027),
    ("D", "Discount", (5.0, 50.0), 0.00014),
    ("S", "SAMPLES", (1.0, 60.0), 0.00012),
    ("BANK CHARGES", "Bank Charges", (15.0, 15.0), 0.00007),
    ("AMAZONFEE", "AMAZON FEE", (5000.0, 13000.0), 0.00006),
    ("CRUK", "CRUK Commission", (1.0, 50.0), 0.00003),
    ("PADS", "PADS TO MATCH ALL CUSHIONS", (0.001, 0.001), 0.00001),
    ("gift_0001_20", "Dotcomgiftshop Gift Voucher £20.00", (16.0, 17.5), 0.00002),
    ("DCGS0003", "BOXED GLASS ASHTRAY", (2.5, 2.5), 0.00001),
]
HEADERS = {
    "online-retail": [
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
        "Country",
    ],
    "online-retail-ii": [
        "Invoice",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "Price",
        "Customer ID",
        "Country",
    ],
}
QUANTITIES = np.array([1, 2, 3, 4, 6, 8, 10, 12, 24, 36, 48, 72, 96, 144])
QUANTITY_WEIGHTS = np.array([30, 14, 8, 8, 12, 4, 5, 12, 4, 1, 1, 0.5, 0.3, 0.2])


def generate(
    rows: int,
    seed: int = 0,
    start: datetime = datetime(2010, 12, 1, 8, 26),
    end: datetime = datetime(2011, 12, 9, 12, 50),
    first_invoice: int = 536365,
) -> dict[str, np.ndarray]:
    """Column arrays (object dtype: Python ints, floats, strings, datetimes or None) of `rows` lines."""
    rng = np.random.default_rng(seed)
    n_products = int(np.clip(rows // 20, 200, 4000))
    codes_num = rng.choice(np.arange(10002, 90000), size=n_products, replace=False)
    suffixed = rng.random(n_products) < 0.12
    suffix = rng.choice(list("ABCDEFGHKLNPS"), size=n_products)
    codes = np.array([f"{c}{s}" if x else int(c) for c, s, x in zip(codes_num, suffix, suffixed)], dtype=object)
    names = np.array(
        [
            f"{ADJECTIVES[a]} {NOUNS[b]}"
            for a, b in zip(rng.integers(0, len(ADJECTIVES), n_products), rng.integers(0, len(NOUNS), n_products))
        ],
        dtype=object,
    )
    names = np.array([n + (" " if t else "") for n, t in zip(names, rng.random(n_products) < 0.02)], dtype=object)
    alt_names = np.array(
        [f"{n.strip()} {ADJECTIVES[i]}" for n, i in zip(names, rng.integers(0, len(ADJECTIVES), n_products))],
        dtype=object,
    )
    prices = np.round(np.exp(rng.normal(0.9, 0.8, n_products)), 2).clip(0.06, 300)
    popularity = 1.0 / np.arange(1, n_products + 1) ** 0.5
    popularity /= popularity.sum()

    n_customers = int(np.clip(rows // 124, 10, 4372))
    customers = rng.choice(np.arange(12346, 18288), size=n_customers, replace=False)
    cust_country = np.where(
        rng.random(n_customers) < 0.9, "United Kingdom", rng.choice(np.array(COUNTRIES, dtype=object), size=n_customers)
    )

    # invoices: sizes, kinds and customers
    sizes = []
    while sum(sizes) < rows:
        sizes.extend((rng.geometric(1 / 21, size=max(16, rows // 200))).tolist())
    sizes = np.array(sizes)
    n_inv = int(np.searchsorted(np.cumsum(sizes), rows) + 1)
    sizes = sizes[:n_inv]
    sizes[-1] -= int(sizes.sum() - rows)
    kind = rng.choice(np.array(["sale", "cancel", "adjust"]), size=n_inv, p=[0.83, 0.16, 0.01])
    sizes = np.where(kind == "cancel", np.minimum(sizes, rng.integers(1, 4, n_inv)), sizes)
    sizes = np.where(kind == "adjust", 1, sizes)
    # re-fill to exactly `rows` lines with extra sale invoices
    missing = rows - int(sizes.sum())
    if missing > 0:
        extra = []
        while sum(extra) < missing:
            extra.append(int(rng.geometric(1 / 21)))
        extra[-1] -= sum(extra) - missing
        sizes = np.concatenate([sizes, extra])
        kind = np.concatenate([kind, np.full(len(extra), "sale")])
    order = rng.permutation(len(sizes))
    sizes, kind = sizes[order], kind[order]
    keep = sizes > 0
    sizes, kind = sizes[keep], kind[keep]
    n_inv = len(sizes)
    inv_customer = np.where(rng.random(n_inv) < 0.75, rng.choice(customers, size=n_inv), 0)
    inv_customer = np.where(kind == "adjust", 0, inv_customer)
    span = (end - start).total_seconds()
    inv_offsets = np.sort(rng.random(n_inv)) * span
    inv_offsets[0], inv_offsets[-1] = 0, span
    inv_times = [start + timedelta(minutes=int(o // 60)) for o in inv_offsets]
    inv_numbers = first_invoice + np.arange(n_inv)

    line_inv = np.repeat(np.arange(n_inv), sizes)
    n = len(line_inv)
    product = rng.choice(n_products, size=n, p=popularity)
    stock = codes[product]
    desc = np.where(rng.random(n) < 0.1, alt_names[product], names[product]).astype(object)
    price = prices[product].astype(object)
    qty = rng.choice(QUANTITIES, size=n, p=QUANTITY_WEIGHTS / QUANTITY_WEIGHTS.sum()).astype(object)
    lkind = kind[line_inv]

    # special stock codes on sale lines
    roll = rng.random(n)
    edge = 0.0
    for code, text, (lo, hi), share in SPECIALS:
        hit = (roll >= edge) & (roll < edge + share) & (lkind == "sale")
        edge += share
        idx = np.flatnonzero(hit)
        stock[idx] = code
        desc[idx] = text
        price[idx] = list(np.round(rng.uniform(lo, hi, len(idx)), 3 if code == "PADS" else 2))
        qty[idx] = 1
    zero = (rng.random(n) < 0.0045) & (lkind == "sale")
    price[zero] = 0.0

    # cancellations: negative quantity; stock adjustments: price 0, no customer, notes, negative or positive
    cancel = lkind == "cancel"
    qty[cancel] = -np.abs(qty[cancel].astype(np.int64))
    adjust = np.flatnonzero(lkind == "adjust")
    price[adjust] = 0.0
    qty[adjust] = -rng.integers(1, 200, len(adjust)) * np.where(rng.random(len(adjust)) < 0.85, 1, -1)
    desc[adjust] = rng.choice(np.array(NOTES, dtype=object), size=len(adjust))

    invoice = np.empty(n, dtype=object)
    numbers = inv_numbers[line_inv]
    invoice[:] = numbers.tolist()
    invoice[cancel] = [f"C{x}" for x in numbers[cancel]]
    when = np.array(inv_times, dtype=object)[line_inv]
    customer = inv_customer[line_inv].astype(object)
    customer[customer == 0] = None
    country = np.where(
        inv_customer[line_inv] == 0,
        "United Kingdom",
        cust_country[np.searchsorted(np.sort(customers), inv_customer[line_inv]).clip(0, n_customers - 1)],
    )
    sorted_idx = np.argsort(customers)
    pos = np.searchsorted(customers[sorted_idx], inv_customer[line_inv]).clip(0, n_customers - 1)
    country = np.where(inv_customer[line_inv] == 0, "United Kingdom", cust_country[sorted_idx][pos]).astype(object)
    # a few blank descriptions on product lines too
    desc[(rng.random(n) < 0.0005) & (lkind == "sale") & (price == 0.0)] = None

    cols = {
        "invoice": invoice,
        "stock": stock,
        "desc": desc,
        "qty": qty,
        "when": when,
        "price": price,
        "customer": customer,
        "country": country,
    }
    if rows >= 1000:
        _set_row(
            cols,
            n // 3,
            ["A563185", "B", "Adjust bad debt", 1, datetime(2011, 8, 12, 14, 50), 11062.06, None, "United Kingdom"],
        )
        _set_row(
            cols,
            n // 3 + 1,
            ["A563186", "B", "Adjust bad debt", 1, datetime(2011, 8, 12, 14, 51), -11062.06, None, "United Kingdom"],
        )
        _set_row(
            cols,
            n // 3 + 2,
            ["A563187", "B", "Adjust bad debt", 1, datetime(2011, 8, 12, 14, 52), -11062.06, None, "United Kingdom"],
        )
        _set_row(
            cols,
            n - 2,
            [
                581483,
                23843,
                "PAPER CRAFT , LITTLE BIRDIE",
                80995,
                datetime(2011, 12, 9, 9, 15),
                2.08,
                16446,
                "United Kingdom",
            ],
        )
        _set_row(
            cols,
            n - 1,
            [
                "C581484",
                23843,
                "PAPER CRAFT , LITTLE BIRDIE",
                -80995,
                datetime(2011, 12, 9, 9, 27),
                2.08,
                16446,
                "United Kingdom",
            ],
        )
    # exact duplicates: ~1% of lines repeat the line before them
    dup = np.flatnonzero(rng.random(n) < 0.0097)
    dup = dup[(dup > 0) & (dup < n - 2)]
    for key in cols:
        cols[key][dup] = cols[key][dup - 1]
    return cols


def _set_row(cols: dict, i: int, values: list) -> None:
    for key, value in zip(cols, values):
        cols[key][i] = value


def write_sample(
    out: Path, rows: int = 20_000, variant: str = "online-retail", seed: int = 0, fmt: str | None = None
) -> dict:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or ("csv.gz" if out.name.endswith(".csv.gz") else out.suffix.lstrip(".").lower() or "xlsx")
    headers = HEADERS[variant]
    if variant == "online-retail-ii":
        first = rows // 2
        sheets = [
            (
                "Year 2009-2010",
                generate(first, seed, datetime(2009, 12, 1, 7, 45), datetime(2010, 12, 9, 20, 1), 489434),
            ),
            ("Year 2010-2011", generate(rows - first, seed + 1)),
        ]
    else:
        sheets = [("Online Retail", generate(rows, seed))]
    if fmt == "xlsx":
        _write_xlsx(out, headers, sheets)
    else:
        table = pa.concat_tables([_to_arrow(headers, cols) for _, cols in sheets])
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, out)
        else:
            import pyarrow.csv as pacsv

            if fmt == "csv.gz":
                with pa.CompressedOutputStream(str(out), "gzip") as sink:
                    pacsv.write_csv(table, sink)
            else:
                pacsv.write_csv(table, out)
    return {"rows": rows, "sheets": len(sheets)}


def _to_arrow(headers: list[str], cols: dict) -> pa.Table:
    def text(values):
        return pa.array([None if v is None else str(v) for v in values], pa.string())

    return pa.table(
        {
            headers[0]: text(cols["invoice"]),
            headers[1]: text(cols["stock"]),
            headers[2]: pa.array(list(cols["desc"]), pa.string()),
            headers[3]: pa.array([int(v) for v in cols["qty"]], pa.int64()),
            headers[4]: pa.array(list(cols["when"]), pa.timestamp("s")),
            headers[5]: pa.array([float(v) for v in cols["price"]], pa.float64()),
            headers[6]: pa.array([None if v is None else float(v) for v in cols["customer"]], pa.float64()),
            headers[7]: pa.array(list(cols["country"]), pa.string()),
        }
    )


# ---------------------------------------------------------------- SpreadsheetML writer

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
