"""Write a result bundle folder the way the contract (section 1) asks: tables first, manifest last.

The writer is deliberately permissive about *content*: it writes whatever manifest and tables it
is given, so tests can also build bundles the lake must refuse (a bad ``format``, a missing
file, a wrong ``run_id``). It is strict only about *where* it writes: a table file name is always
a bare name inside ``folder``, never a path.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

BUNDLE_FORMAT = "btlake.bundle/1"
MANIFEST_NAME = "manifest.json"
_EXTENSIONS = {"parquet": ".parquet", "csv": ".csv"}


def write_bundle(
    folder: Path,
    manifest: Mapping[str, Any],
    tables: Mapping[str, pa.Table],
    *,
    file_format: str = "parquet",
) -> Path:
    """Write ``tables`` and then ``manifest.json`` into ``folder``; return ``folder``.

    ``manifest`` is copied, never mutated. ``format`` defaults to ``btlake.bundle/1`` and
    ``tables`` to ``{name: "<name>.<file_format>"}``; values already present are kept verbatim so
    callers can write deliberately broken bundles. A table whose name the manifest maps to a file
    is written under that file name, in the format its extension says; a table the mapping does
    not mention is written as ``<name>.<file_format>`` (and stays unlisted).

    A previous ``manifest.json`` in ``folder`` is removed first, so a reader never pairs an old
    manifest with half-rewritten tables. The new manifest goes to a temporary name in the same
    folder and is renamed into place after every table file is flushed to disk, so a reader sees
    either no manifest or a whole one.
    """
    if file_format not in _EXTENSIONS:
        raise ValueError(f"file_format must be 'parquet' or 'csv', got {file_format!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = dict(manifest)
    final.setdefault("format", BUNDLE_FORMAT)
    final.setdefault("tables", {name: f"{name}{_EXTENSIONS[file_format]}" for name in tables})
    mapping = final["tables"] if isinstance(final["tables"], Mapping) else {}

    manifest_path = folder / MANIFEST_NAME
    manifest_path.unlink(missing_ok=True)
    for name, table in tables.items():
        file_name = mapping.get(name, f"{name}{_EXTENSIONS[file_format]}")
        _write_table(folder / _bare_name(file_name), table, file_format)
    _write_json_atomically(manifest_path, final)
    return folder


def _bare_name(file_name: object) -> str:
    """Refuse anything but a plain file name, so a manifest can never make us write elsewhere."""
    if (
        not isinstance(file_name, str)
        or file_name in ("", ".", "..")
        or "/" in file_name
        or "\\" in file_name
        or "\x00" in file_name
    ):
        raise ValueError(f"table file name must be a bare file name, got {file_name!r}")
    return file_name


def _write_table(path: Path, table: pa.Table, file_format: str) -> None:
    """Write one table as Parquet or CSV by the file's extension, then fsync it.

    A name with another extension (a test of the lake's refusal, say) gets ``file_format``.
    """
    suffix = path.suffix if path.suffix in (".csv", ".parquet") else _EXTENSIONS[file_format]
    if suffix == ".csv":
        pa_csv.write_csv(csv_ready(table), path)
    else:
        pq.write_table(table, path)
    _fsync(path)


def csv_ready(table: pa.Table) -> pa.Table:
    """Turn every timestamp column into ISO-8601 text with an explicit offset.

    Arrow's CSV writer prints ``2024-01-01 00:00:00Z``-style values; the contract wants ISO-8601
    with an offset. A column with a non-UTC time zone keeps its local wall time and each row gets
    its own offset (``-04:00`` in summer, ``-05:00`` in winter for New York), which is exactly what
    the contract allows a CSV to carry. A column without a time zone is UTC by the contract and is
    written with ``+00:00``. Sub-second digits are kept to the column's unit (ns stays ns).
    """
    columns = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type):
            column = _iso_text(column)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _iso_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    kind = column.type
    if kind.tz is None:
        column = column.cast(pa.timestamp(kind.unit, tz="UTC"))
    text = pc.strftime(column, format="%Y-%m-%dT%H:%M:%S%z")
    return pc.replace_substring_regex(text, pattern=r"([+-]\d\d)(\d\d)$", replacement=r"\1:\2")


def _write_json_atomically(path: Path, document: Mapping[str, Any]) -> None:
    payload = json.dumps(_json_safe(document), indent=2, allow_nan=False) + "\n"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _json_safe(value: Any) -> Any:
    """Make a manifest JSON-serialisable: datetimes to ISO text, numpy scalars to Python.

    Non-finite floats become ``null``: JSON has no NaN, and the contract allows null metrics.
    """
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself; not every platform lets a directory be opened, so best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
