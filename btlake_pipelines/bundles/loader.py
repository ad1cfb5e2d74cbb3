"""A bundle from the landing zone into validated, lake-shaped tables, or one refusal.

Nothing is written here: loading is a pure function of what is in landing, so a batch can load
every bundle first and commit the good ones together.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import polars as pl

from btlake_pipelines.bundles.files import read_table_file
from btlake_pipelines.bundles.normalize import normalize_table
from btlake_pipelines.contract.manifest import Manifest, parse_manifest
from btlake_pipelines.contract.run_ids import RUN_ID_RULE, is_valid_run_id
from btlake_pipelines.contract.schemas import validate_many
from btlake_pipelines.contract.tables import FACT_TABLES, is_market_rows
from btlake_pipelines.errors import BundleRefused
from btlake_pipelines.landing.zone import MANIFEST, LandingZone

READ_THREADS = min(4, (os.cpu_count() or 1) + 1)


@dataclass
class LoadedBundle:
    name: str
    manifest: Manifest
    content_hash: str
    source_uri: str
    #: The run's own rows (trades, equity, the run's events), keyed by table.
    run_tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    #: Shared market data (ticks, l2, market events), keyed by table.
    market_tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    #: The bundle's files as listed (name -> entry), when it is left to the streamed path
    #: (``ingest/large.py``): nothing was read beyond the manifest, no tables are set.
    streamed: dict | None = None

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    def row_counts(self) -> dict[str, int]:
        tables = {**self.run_tables, **self.market_tables}
        return {name: df.height for name, df in sorted(tables.items())}


def load_bundles(zone: LandingZone, names: list[str],
                 progress: Callable[[str], None] | None = None, *, stream_large: bool = False
                 ) -> tuple[list[LoadedBundle], list[BundleRefused]]:
    """Load many bundles and validate them together: (good bundles, refusals), in the order of
    ``names``. A bundle that fails in any unexpected way is refused too, never raised: one bad
    bundle must not stop the others. ``stream_large``: a market-data bundle above
    :func:`threshold_bytes` is not read but returned with ``streamed`` set (its listing), for
    the streamed path; the decision costs no listing beyond the one reading needs anyway."""
    loaded: list[LoadedBundle] = []
    refused: dict[str, BundleRefused] = {}
    # Reading is mostly Arrow/polars work that releases the GIL: a few threads overlap file
    # reads and decoding of small bundles.
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        for name, outcome in zip(names, pool.map(_read_or_refusal, [zone] * len(names), names,
                                                 [stream_large] * len(names)), strict=True):
            if isinstance(outcome, BundleRefused):
                refused[name] = outcome
            else:
                loaded.append(outcome)
            if progress:
                progress(name)
    for table in FACT_TABLES:
        frames = [(b.name, t) for b in loaded
                  for t in (b.run_tables.get(table), b.market_tables.get(table)) if t is not None]
        refused.update(validate_many(table, frames))
    good = [b for b in loaded if b.name not in refused]
    return good, [refused[n] for n in names if n in refused]


def _read_or_refusal(zone: LandingZone, name: str, stream_large: bool = False
                     ) -> LoadedBundle | BundleRefused:
    try:
        return read_bundle(zone, name, stream_large=stream_large)
    except BundleRefused as exc:
        return exc
    except Exception as exc:
        return BundleRefused(name, "unreadable", f"{type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]}")


def read_bundle(zone: LandingZone, name: str, *, stream_large: bool = False) -> LoadedBundle:
    """Read and normalize one complete bundle; value rules are not checked yet. With
    ``stream_large``, a bundle for the streamed path is only listed (see :func:`streams`)."""
    if not is_valid_run_id(name):
        raise BundleRefused(name, "run_id", f"bundle folder name must be a run id: {RUN_ID_RULE}")
    if zone.is_link(name):
        raise BundleRefused(name, "symlink", "the bundle folder is a symbolic link; it is never "
                                             "followed")
    entries = zone.entries(name)
    manifest_entry = entries.get(MANIFEST)
    if manifest_entry is None or manifest_entry.kind != "file":
        kind = manifest_entry.kind if manifest_entry else "missing"
        raise BundleRefused(name, "manifest_file", f"manifest.json must be a regular file "
                                                   f"({kind})", table="manifest")
    manifest_bytes = zone.read_bytes(name, MANIFEST)
    manifest = parse_manifest(manifest_bytes, name)
    if stream_large and streams(manifest, entries):
        return LoadedBundle(name, manifest, "", zone.location(name), streamed=entries)

    digest = hashlib.sha256(canonical_manifest(manifest.raw))
    raw_tables = {}
    for table, file_name in sorted(manifest.tables.items()):
        entry = entries.get(file_name)
        if entry is None:
            raise BundleRefused(name, "missing_file", f"file '{file_name}' named in the manifest "
                                "is not in the bundle", table=table)
        if entry.kind != "file":
            raise BundleRefused(name, "not_a_regular_file", f"'{file_name}' is a {entry.kind}, "
                                "not a regular file", table=table)
        data = zone.read_bytes(name, file_name)
        if len(data) != entry.size:
            raise BundleRefused(name, "file_changing", f"'{file_name}' changed size while being "
                                f"read ({entry.size} then {len(data)} bytes): it is still being "
                                "written after its manifest appeared", table=table)
        digest.update(f"\0{table}\0{file_name}\0{len(data)}\0".encode())
        digest.update(data)
        raw_tables[table] = read_table_file(data, file_name, bundle=name, table=table)

    bundle = LoadedBundle(name, manifest, digest.hexdigest(), zone.location(name))
    for table, raw in raw_tables.items():
        market_rows = is_market_rows(table, manifest.kind)
        df = normalize_table(raw, spec=FACT_TABLES[table], manifest=manifest, bundle=name,
                             run_hash=bundle.content_hash, market_rows=market_rows)
        (bundle.market_tables if market_rows else bundle.run_tables)[table] = df
    return bundle


#: Market-data bundles above this many MB of Parquet stream unless ``BTLAKE_STREAM_MB`` says.
DEFAULT_THRESHOLD_MB = 16


def threshold_bytes() -> int:
    """Market-data bundles whose Parquet tables add up to more than this stream
    (``BTLAKE_STREAM_MB``, default 16 MB, about 1.5M ticks). Loaded whole, a 53 MB file of 5M
    ticks peaked at 1.8 GB and 101 MB of 10M at 2.7 GB; streamed, every size stays near
    1 GB, and since a bundle into empty partitions streams in one pass (``ingest/large.py``)
    streaming is no slower. Smaller bundles are still loaded, so that many of them share one
    commit per table."""
    from btlake_pipelines.settings import current

    mb = current().stream_mb
    return int((DEFAULT_THRESHOLD_MB if mb is None else mb) * (1 << 20))


def streams(manifest: Manifest, entries: dict) -> bool:
    """Whether a bundle takes the streamed path (``ingest/large.py``): market data, Parquet
    files only, all present, together above :func:`threshold_bytes`. Anything unusual goes the
    ordinary way, which refuses it with the usual reasons."""
    if manifest.is_backtest or not manifest.tables:
        return False
    files = [entries.get(f) for f in manifest.tables.values()]
    if any(e is None or e.kind != "file" for e in files) or not all(
            f.endswith(".parquet") for f in manifest.tables.values()):
        return False
    return sum(e.size for e in files if e is not None) > threshold_bytes()


def canonical_manifest(doc: dict) -> bytes:
    """The manifest as canonical JSON, so formatting alone never counts as a content change."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
