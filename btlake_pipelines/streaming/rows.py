"""One streamed record batch into the lake's stored shape, checked by the table's rules.

The same code as ingestion: :func:`~btlake_pipelines.bundles.normalize.normalize_table` (types,
UTC timestamps with exact nanoseconds, ``market`` filled, ``date`` partition) and
:func:`~btlake_pipelines.contract.schemas.validate_many` (the pandera rules), so a row a
bundle may not store cannot be streamed either. A batch breaks a rule as a whole: the
:class:`~btlake_pipelines.errors.BundleRefused` names the table, the column, the rule and a
few row numbers of that batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa

from btlake_pipelines.bundles.normalize import normalize_table
from btlake_pipelines.contract.manifest import MARKET_PATTERN, MARKET_RULE, Manifest
from btlake_pipelines.contract.schemas import validate_many
from btlake_pipelines.contract.tables import FACT_TABLES, Scope
from btlake_pipelines.errors import BtlakeError, BundleRefused

#: Tables a stream may append to: market data (``events`` as market events).
STREAM_TABLES = tuple(t for t, spec in FACT_TABLES.items() if spec.scope is not Scope.RUN)
#: Largest ``seq``: a Delta ``txn`` version is a signed 64-bit integer.
MAX_SEQ = 2**63 - 1


@dataclass(frozen=True)
class BatchTag:
    """What a producer says about one batch: its stable name and the batch's sequence number."""

    writer: str
    seq: int

    @property
    def label(self) -> str:
        return f"{self.writer}#{self.seq}"


def check_target(table: str, market: str) -> None:
    """A stream's descriptor: a market-data table and a valid market name."""
    if table not in STREAM_TABLES:
        raise BtlakeError(f"bad {{param}}: streams append to {', '.join(STREAM_TABLES)}, "
                          f"not {table[:60]!r}", param="table")
    if not MARKET_PATTERN.fullmatch(market or ""):
        raise BtlakeError(f"bad {{param}} {market[:60]!r}: must be {MARKET_RULE}",
                          param="market")


def check_writer(writer: object) -> str:
    if not isinstance(writer, str) or not 1 <= len(writer) <= 128 or not writer.isprintable():
        raise BtlakeError("bad {param}: a writer is a name of 1 to 128 printable characters",
                          param="writer")
    return writer


def parse_tag(metadata: bytes | None) -> BatchTag:
    """A batch's ``app_metadata``: UTF-8 JSON ``{"writer": ID, "seq": N}``."""
    try:
        doc = json.loads((metadata or b"").decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        doc = None
    if not isinstance(doc, dict):
        raise BtlakeError('bad {param}: each batch needs app_metadata {"writer": ID, '
                          '"seq": N} as UTF-8 JSON', param="app_metadata")
    seq = doc.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise BtlakeError("bad {param}: seq must be an integer from 0 to 2**63-1",
                          param="seq")
    return BatchTag(check_writer(doc.get("writer")), seq)


def stored_rows(table: str, market: str, batch: pa.RecordBatch | pa.Table,
                tag: BatchTag) -> pl.DataFrame:
    """The batch as the lake stores it, or a :class:`BundleRefused` naming the broken rule."""
    check_target(table, market)
    raw = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    if "market" in raw.column_names:
        given = pl.Series(raw.column("market").to_pylist(), dtype=pl.String)
        bad = given.is_null() | (given != market)
        if bad.any():
            rows = bad.arg_true().head(5).to_list()
            raise BundleRefused(tag.label, "market_mismatch",
                                f"column 'market' must equal the stream's market '{market}'",
                                table=table, column="market", rows=rows,
                                values=given.gather(rows).to_list())
    manifest = Manifest(run_id=tag.writer, kind="market_data", created_at=datetime.now(UTC),
                        tables={}, markets=(market,))
    frame = normalize_table(raw, spec=FACT_TABLES[table], manifest=manifest, bundle=tag.label,
                            run_hash="", market_rows=True)
    refused = validate_many(table, [(tag.label, frame)])
    if refused:
        raise refused[tag.label]
    return frame
