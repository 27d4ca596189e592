"""How the command line shows a path or a file:// URI to a person: relative to the current folder
when it lies inside it (so transcripts and docs never show the machine's own folders)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse


def shown(value: str | os.PathLike[str]) -> str:
    text = str(value)
    uri = text.startswith("file://")
    path = Path(unquote(urlparse(text).path)) if uri else Path(text)
    if not path.is_absolute():
        return text
    try:
        relative = path.relative_to(Path.cwd())
    except ValueError:
        return text
    return str(relative) if str(relative) != "." else "."
