"""Reading the book's executed notebooks (book layer): where the checkout is, and what a notebook glued.

Kept apart from :mod:`advdetect.book` (the build, run as ``python -m advdetect.book``) so that the package can
import it without importing the build's entry point.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path


def repo_root(start: Path | None = None) -> Path:
    """The folder holding ``_toc.yml`` (searched upward from ``start``, default the working directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "_config.yml").is_file():
            return folder
    raise SystemExit(f"no _toc.yml/_config.yml found in {here} or above: run from the advdetect checkout")


def glued(notebook: str | os.PathLike) -> dict:
    """The values an executed notebook glued (``myst_nb.glue``), by name: numbers, strings, booleans and lists or
    dicts of them, read back from their text form; anything else stays a string. A later glue of the same name
    wins, as in the rendered book."""
    nb = json.loads(Path(notebook).read_text())
    out = {}
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []):
            meta = o.get("metadata", {}).get("scrapbook")
            if not meta:
                continue
            text = o.get("data", {}).get(meta.get("mime_prefix", "") + "text/plain")
            if text is None:
                continue
            text = "".join(text) if isinstance(text, list) else text
            try:
                out[meta["name"]] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                out[meta["name"]] = text
    return out
