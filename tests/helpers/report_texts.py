"""Every file of a built report site as text, for privacy searches: pages, CSV and JSON as they
are, each .xlsx unzipped (its XML parts), each Parquet file read back (its values)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pyarrow.parquet as pq


def site_texts(site: Path) -> dict[str, str]:
    """{path relative to ``site``: its text}; a site is a day's directory (``latest`` links to one)."""
    out: dict[str, str] = {}
    for path in sorted(p for p in site.rglob("*") if p.is_file()):
        rel = path.relative_to(site).as_posix()
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as book:
                out[rel] = "\n".join(book.read(n).decode("utf-8", errors="replace") for n in book.namelist())
        elif path.suffix == ".parquet":
            out[rel] = repr(pq.read_table(path).to_pylist())
        else:
            out[rel] = path.read_text(encoding="utf-8", errors="replace")
    return out
