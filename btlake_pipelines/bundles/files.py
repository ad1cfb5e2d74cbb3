"""Table files (Parquet or CSV) into Arrow, with every failure turned into a refusal."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from btlake_pipelines.contract.tables import FACT_TABLES
from btlake_pipelines.errors import BundleRefused

_CSV_ROW = re.compile(r"[Rr]ow #?(\d+)")


def read_table_file(data: bytes, file_name: str, *, bundle: str, table: str) -> pa.Table:
    """Parse one table file; Parquet by content, CSV by extension."""
    if file_name.endswith(".parquet"):
        return _read_parquet(data, bundle, table)
    return _read_csv(data, bundle, table)


def _read_parquet(data: bytes, bundle: str, table: str) -> pa.Table:
    if len(data) < 12 or data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise BundleRefused(bundle, "file_format", "not a Parquet file (missing or truncated "
                                                   "footer)", table=table)
    try:
        return pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BundleRefused(bundle, "file_format", f"unreadable Parquet: {_short(exc)}",
                            table=table) from None


def _read_csv(data: bytes, bundle: str, table: str) -> pa.Table:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte-order mark is common from spreadsheet exports
    if not data.strip():
        raise BundleRefused(bundle, "csv_format", "CSV file is empty (a header row is required)",
                            table=table)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n")
        raise BundleRefused(bundle, "csv_encoding", f"CSV is not UTF-8 (byte {exc.start}, "
                            f"line {line + 1})", table=table, rows=[max(line - 1, 0)]) from None
    # Text columns stay text here; casting to the table's types happens in one place later,
    # so a wrong value is reported with its column and row whatever the file format.
    try:
        result = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(block_size=1 << 24),
            # quoted values may hold line breaks (RFC 4180); without this, a file over one
            # block was refused for what a smaller file was accepted for (no speed cost seen)
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                strings_can_be_null=True, timestamp_parsers=[], auto_dict_encode=False,
                quoted_strings_can_be_null=False, column_types=_text_columns(table),
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        match = _CSV_ROW.search(str(exc))
        rows = [int(match.group(1)) - 2] if match else []
        raise BundleRefused(bundle, "csv_format", f"malformed CSV: {_short(exc)}", table=table,
                            rows=[r for r in rows if r >= 0]) from None
    names = result.column_names
    if any(not n.strip() for n in names):
        raise BundleRefused(bundle, "csv_format", "CSV header has an empty column name",
                            table=table)
    return result


def _text_columns(table: str) -> dict[str, pa.DataType]:
    """The contract's text columns are read as text, never inferred: a symbol "007", "1.50"
    or "true" in a CSV stays exactly that (inference made them 7, 1.5 or a refused bool).
    Extra columns are inferred, CSV having no types."""
    spec = FACT_TABLES.get(table)
    names = [n for n, kind in spec.required if kind == "string"] if spec else []
    return {n: pa.string() for n in (*names, "market", "payload", "run_id", "strategy_id")}


def _short(exc: Exception, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
