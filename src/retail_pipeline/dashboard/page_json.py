"""The page's data as JSON text for a ``<script>`` element, its integer columns written fast.

The text is exactly ``json.dumps(data, separators=(",", ":"), ensure_ascii=False)`` of the data
with each numpy integer array as the list of its values, escaped so that it cannot end the script
element. The arrays are the bulk of the page at scale (some 15 million integers at ten times the
reference data): orjson (pinned in requirements.lock) writes an int64 array in compiled code, about
a tenth of the time of a Python list of ints through ``json``; everything else goes through
``json`` as before, so text, ``None`` and numbers are written exactly as ``json.dumps`` writes them.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

try:
    import orjson
except ImportError:  # not in the lock's environment: the same text, the slow way
    orjson = None  # type: ignore[assignment]

#: Characters that must not appear raw inside a <script> element, and their JSON escapes.
SCRIPT_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def script_json(data: Any) -> str:
    """JSON of ``data`` (JSON values, where a dict's value may also be a 1-D numpy integer array)
    that is safe inside a <script> element (no '</script>', no '<!--')."""
    parts: list[str] = []
    _write(data, parts)
    return "".join(parts)


def _write(value: Any, parts: list[str]) -> None:
    if isinstance(value, np.ndarray):
        parts.append(integer_list(value))
    elif isinstance(value, dict) and any(isinstance(v, (dict, np.ndarray)) for v in value.values()):
        parts.append("{")
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"the page's data has text keys only, not {key!r}")
            parts.append(("," if i else "") + _plain(key) + ":")
            _write(item, parts)
        parts.append("}")
    else:
        parts.append(_plain(value))


def _plain(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in SCRIPT_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def integer_list(values: np.ndarray) -> str:
    """The JSON list of a 1-D integer array's values: ``json.dumps(values.tolist(), separators=(",", ":"))``."""
    if values.ndim != 1 or values.dtype.kind not in "iu":
        raise TypeError(f"an integer column is a 1-D integer array, not {values.dtype} of shape {values.shape}")
    if orjson is None:
        return integer_list_slowly(values)
    return orjson.dumps(np.ascontiguousarray(values), option=orjson.OPT_SERIALIZE_NUMPY).decode("ascii")


def integer_list_slowly(values: np.ndarray) -> str:
    """The same text through the standard library (one Python int per value)."""
    return json.dumps(values.tolist(), separators=(",", ":"))
