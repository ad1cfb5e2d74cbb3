"""Turning API results into what a terminal or a file wants: aligned tables, CSV, JSON,
Parquet and Arrow files by extension."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa

EXPORT_FORMATS = {".parquet": "parquet", ".csv": "csv", ".arrow": "arrow", ".json": "json"}


def write_table(table: pa.Table, path: str) -> str:
    """Write ``table`` to ``path`` in the format its extension names."""
    from btlake_pipelines.errors import BtlakeError

    kind = EXPORT_FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise BtlakeError(f"--out {path}: use a .parquet, .csv or .arrow file name")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path, compression="zstd")
    elif kind == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(csv_ready(table), path)
    elif kind == "arrow":
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    else:
        import json

        from btlake_pipelines.query.search import jsonable

        Path(path).write_text(json.dumps(jsonable(table.to_pylist()), default=str))
    return kind


def printable_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows for display: timestamps as ISO text (nanoseconds kept; Python datetimes cannot)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(pa.string()))
    return table.to_pylist()


def csv_ready(table: pa.Table) -> pa.Table:
    """CSV has no nested types: structs and lists become JSON text."""
    import json

    from btlake_pipelines.query.search import jsonable

    for i, f in enumerate(table.schema):
        if pa.types.is_struct(f.type) or pa.types.is_list(f.type) or pa.types.is_map(f.type):
            text = [None if v is None else json.dumps(jsonable(v), default=str)
                    for v in table.column(i).to_pylist()]
            table = table.set_column(i, f.name, pa.array(text, pa.string()))
    return table


def text_table(rows: list[dict[str, Any]], columns: list[str], *, max_width: int = 40) -> str:
    """An aligned plain-text table."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            value = f"{value:.10g}"
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        text = "" if value is None else str(value)
        text = " ".join(text.split())
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in body)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
              for row in body]
    return "\n".join(lines)


def compact(mapping: dict[str, Any] | None, limit: int = 4) -> str:
    if not mapping:
        return ""
    items = [f"{k}={_num(v)}" for k, v in mapping.items() if v is not None]
    more = f" +{len(items) - limit}" if len(items) > limit else ""
    return " ".join(items[:limit]) + more


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return buf.getvalue()
