"""The one reader of a table's Delta log and of btlake's commit metadata.

Commits: :class:`Commit` is what btlake knows about one commit (Delta's own facts and the
``btlake.*`` values :mod:`btlake_pipelines.storage.delta` writes with it), read either from the
table's history (:func:`history`) or from one commit file (:func:`commit`). btlake writes its
metadata as JSON values (``CommitProperties(custom_metadata=...)`` keeps lists and numbers as
such, and ``DeltaTable.history()`` gives them back); lakes written before hold the same values
as JSON text inside strings, which :class:`Commit` reads too.

Files: a long-lived reader that already holds version ``v`` of a table needs only what happened
after it. Each commit ``NNN.json`` lists its ``add`` and ``remove`` actions, so the files to
load and the files to drop are known from a few small reads, without listing or replaying the
table (:func:`changes`). Anything this reader cannot follow exactly (a commit file gone after
log cleanup, deletion vectors, a change of schema or protocol, a path outside the table) is
reported as "unknown", and the caller falls back to a full load.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import polars as pl

from btlake_pipelines.settings import is_object_store, storage_options
from btlake_pipelines.storage import lake_files

LOG = "_delta_log"
#: The commit metadata key of the id :func:`find_commit` looks for.
COMMIT_ID = "btlake.commit"
#: Column every frame from :func:`read_files` carries: the log path of the row's data file.
FILE_COLUMN = "__file"


@dataclass(frozen=True)
class DataFile:
    """One data file as the log names it: ``path`` relative to the table and URL-encoded (the
    key ``remove`` actions use), and its partition values as text."""

    path: str
    partition_values: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Changes:
    """The net effect of commits ``after + 1 .. upto``: files that are new and still live, and
    files the reader held that are gone."""

    after: int
    upto: int
    added: list[DataFile]
    removed: set[str]
    #: the table's schema when a commit wrote one (delta-rs rewrites it with every schema
    #: merge, usually unchanged), else None; partition columns the same way
    schema: pl.Schema | None = None
    partition_columns: list[str] | None = None


def table_uri(lake: str, table: str) -> str:
    """Where ``table`` of the lake at ``lake`` lives (its data files and its ``_delta_log``)."""
    return f"{lake.rstrip('/')}/{table}"


def commit_uri(lake: str, table: str, version: int) -> str:
    return f"{table_uri(lake, table)}/{LOG}/{version:020d}.json"


@dataclass(frozen=True)
class Commit:
    """One commit of a table: Delta's facts and btlake's metadata, typed.

    ``rows_added`` / ``rows_removed`` are btlake's own counts when it recorded them (a slice
    replacement writes back the stored rows of its partition that it keeps, which Delta counts
    as added), else Delta's operation metrics."""

    version: int
    timestamp: datetime | None
    operation: str | None
    predicate: str | None = None
    #: the btlake batch (or re-derivation) that wrote it, and the id :func:`find_commit` uses
    batch_id: str | None = None
    commit_id: str | None = None
    #: the run (bundle) names whose rows it holds (at most 1,000 are recorded) and their count
    runs: list[str] = field(default_factory=list)
    run_count: int = 0
    rows_added: int | None = None
    rows_removed: int | None = None
    files_added: int | None = None
    files_removed: int | None = None
    #: ``btlake.operation`` (``rederive``), ``btlake.maintenance`` (``optimize``, ...) and the
    #: partitions a re-derivation rewrote
    btlake_operation: str | None = None
    maintenance: str | None = None
    partitions: list[str] = field(default_factory=list)
    #: every key of the commit's ``commitInfo`` as read
    info: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_info(cls, info: Mapping[str, Any], version: int | None = None) -> Commit:
        """A commit from a ``commitInfo`` action or a ``DeltaTable.history()`` entry (which
        carries its ``version``)."""
        metrics = info.get("operationMetrics") or {}
        params = info.get("operationParameters") or {}
        runs = _strings(info.get("btlake.runs"))
        added = _int(info.get("btlake.rows_added"))
        removed = _int(info.get("btlake.rows_removed"))
        stamp = _int(info.get("timestamp"))
        return cls(
            version=int(info["version"] if version is None else version),
            timestamp=None if stamp is None else _from_millis(stamp),
            operation=info.get("operation"),
            predicate=params.get("predicate"),
            batch_id=_text(info.get("btlake.batch")),
            commit_id=_text(info.get(COMMIT_ID)),
            runs=runs,
            run_count=_int(info.get("btlake.run_count")) or len(runs),
            rows_added=added if added is not None else _int(metrics.get(
                "num_added_rows", metrics.get("num_output_rows"))),
            rows_removed=removed if removed is not None else _int(metrics.get(
                "num_removed_rows", metrics.get("num_deleted_rows"))),
            files_added=_int(metrics.get("num_added_files")),
            files_removed=_int(metrics.get("num_removed_files")),
            btlake_operation=_text(info.get("btlake.operation")),
            maintenance=_text(info.get("btlake.maintenance")),
            partitions=_strings(info.get("btlake.partitions")),
            info=info,
        )


def commit_metadata(metadata: Mapping[str, Any], commit_id: str) -> dict[str, Any]:
    """``custom_metadata`` for a btlake commit: ``metadata`` as JSON values (anything JSON
    has no type for, a date say, as its text) and the commit's id."""
    values = json.loads(json.dumps(dict(metadata), default=str))
    return {**values, COMMIT_ID: commit_id}


def history(dt, limit: int | None = None) -> list[Commit]:
    """The commits of the table ``dt`` (a ``DeltaTable``) is loaded at, newest first: every
    one, or the ``limit`` latest."""
    commits = [Commit.from_info(entry) for entry in dt.history(limit)]
    return sorted(commits, key=lambda c: c.version, reverse=True)


def commit(lake: str, table: str, version: int) -> Commit | None:
    """Commit ``version`` of ``table`` from its commit file (None when the file is gone, after
    log cleanup, or holds no ``commitInfo``)."""
    for action in actions(lake, table, version) or []:
        if "commitInfo" in action:
            return Commit.from_info(action["commitInfo"], version)
    return None


def has_commit(lake: str, table: str, version: int) -> bool:
    """Whether commit ``version`` of ``table`` exists: one ``stat`` locally, one HEAD on S3."""
    uri = commit_uri(lake, table, version)
    return lake_files.exists(uri) if is_object_store(uri) else os.path.exists(uri)


def find_commit(lake: str, table: str, commit_id: str, latest: int,
                depth: int = 64) -> int | None:
    """The version of the commit carrying ``commit_id``, looked for from ``latest`` down to
    ``depth`` commits back (None when not found).

    Read from the commit files themselves, whose names are their versions: ``history()``
    numbers its entries down from the loaded version, so a commit landing while it runs shifts
    every label by one (seen on S3 with concurrent writers: the first commit labelled -1)."""
    for version in range(latest, max(latest - depth, -1), -1):
        found = actions(lake, table, version)
        if found is None:  # cleaned up after a checkpoint: far older than the commit
            return None
        if any((a.get("commitInfo") or {}).get(COMMIT_ID) == commit_id for a in found):
            return version
    return None


def changes(lake: str, table: str, after: int, upto: int) -> Changes | None:
    """What commits ``after + 1`` to ``upto`` of ``table`` did to its set of data files, or
    None when that cannot be told from their commit files alone (see the module docstring)."""
    added: dict[str, DataFile] = {}
    removed: set[str] = set()
    metadata: dict[str, Any] | None = None
    for version in range(after + 1, upto + 1):
        found = actions(lake, table, version)
        if found is None:
            return None
        for action in found:
            if "protocol" in action:
                return None  # new reader rules: not a change of rows alone
            if "metaData" in action:
                metadata = action["metaData"]
            elif "add" in action:
                add = action["add"]
                path = add.get("path")
                if not _relative(path) or add.get("deletionVector"):
                    return None
                added[path] = DataFile(path, dict(add.get("partitionValues") or {}))
            elif "remove" in action:
                rem = action["remove"]
                path = rem.get("path")
                if not _relative(path) or rem.get("deletionVector"):
                    return None
                if added.pop(path, None) is None:
                    removed.add(path)
    out = Changes(after, upto, list(added.values()), removed)
    if metadata is not None:
        try:
            out.schema = schema_of(metadata["schemaString"])
            out.partition_columns = list(metadata.get("partitionColumns") or [])
        except Exception:  # a schema this reader cannot parse: load the table instead
            return None
    return out


def schema_of(schema_json: str) -> pl.Schema:
    """A Delta schema (the log's JSON text) as the polars schema readers get."""
    import pyarrow as pa
    from deltalake import Schema

    return polars_schema(pa.schema(Schema.from_json(schema_json).to_arrow()))


def table_schema(dt) -> pl.Schema:
    """The polars schema of the version ``dt`` (a ``DeltaTable``) is loaded at."""
    import pyarrow as pa

    return polars_schema(pa.schema(dt.schema().to_arrow()))


def polars_schema(arrow) -> pl.Schema:
    """The polars schema of the Arrow schema ``arrow``, through an empty table made with
    ``Table.from_batches([])``: ``Schema.empty_table()`` imports pandas (0.3-0.4 s of a CLI
    call)."""
    import pyarrow as pa

    return pl.Schema(pl.from_arrow(pa.Table.from_batches([], schema=arrow)).schema)  # type: ignore[union-attr]


def actions(lake: str, table: str, version: int) -> list[dict[str, Any]] | None:
    """The actions of commit ``version`` of ``table`` (None when its file cannot be read)."""
    try:
        text = lake_files.read_bytes(commit_uri(lake, table, version))
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, ValueError):
        return None


def _relative(path: Any) -> bool:
    return isinstance(path, str) and bool(path) and "://" not in path and not path.startswith("/")


def add_actions(dt, *, flatten: bool):
    """The add actions of the version ``dt`` is loaded at, as a ``pyarrow.Table``. Read
    through the Arrow stream interface: ``pa.table()`` on deltalake's result first asks
    whether it is a pandas DataFrame, which imports pandas (0.3-0.4 s of a CLI call)."""
    import pyarrow as pa

    return pa.RecordBatchReader.from_stream(dt.get_add_actions(flatten=flatten)).read_all()


def live_files(dt) -> list[DataFile]:
    """The data files of the version ``dt`` (a ``DeltaTable``) is loaded at."""
    actions = add_actions(dt, flatten=False)
    paths = actions.column("path").to_pylist()
    if "partition" in actions.column_names:
        values = actions.column("partition").to_pylist()
    else:
        values = [{}] * len(paths)
    return [DataFile(p, {k: _partition_text(v) for k, v in (pv or {}).items()})
            for p, pv in zip(paths, values, strict=True)]


def _partition_text(value: Any) -> str | None:
    return None if value is None else value.isoformat() if hasattr(value, "isoformat") \
        else str(value)


def read_files(lake: str, table: str, files: list[DataFile], schema: pl.Schema,
               partition_columns: list[str]) -> pl.DataFrame:
    """The rows of ``files``, in that order and each file's rows together, with the table's
    ``schema`` (columns a file lacks are null) and :data:`FILE_COLUMN` naming each row's file.
    Partition values come from the log, not from folder names."""
    data_schema = pl.Schema({k: v for k, v in schema.items() if k not in partition_columns})
    if not files:
        return pl.DataFrame(schema={**schema, FILE_COLUMN: pl.String})
    from polars.io.scan_options.cast_options import ScanCastOptions

    root = table_uri(lake, table)
    uris = [f"{root}/{unquote(f.path)}" for f in files]
    frame = pl.scan_parquet(
        uris, schema=data_schema, hive_partitioning=False, missing_columns="insert",
        extra_columns="ignore", cast_options=ScanCastOptions._default_iceberg(),
        include_file_paths=FILE_COLUMN, storage_options=storage_options(root),
    ).collect()
    by_uri = dict(zip(uris, files, strict=True))
    lengths = frame.get_column(FILE_COLUMN).rle()
    owners = [by_uri[u] for u in lengths.struct.field("value").to_list()]
    counts = lengths.struct.field("len").to_list()
    extra = {FILE_COLUMN: pl.Series(FILE_COLUMN, [f.path for f in owners], pl.String)}
    for column in partition_columns:
        values = pl.Series(column, [f.partition_values.get(column) for f in owners], pl.String)
        extra[column] = _typed(values, schema.get(column, pl.String))
    index = _repeat_index(counts)
    columns = {k: v.gather(index) for k, v in extra.items()}
    frame = frame.with_columns(**columns)
    return frame.select([*schema.names(), FILE_COLUMN])


def _typed(values: pl.Series, dtype: pl.DataType) -> pl.Series:
    """Partition values (Delta keeps them as text) in the column's type."""
    if dtype == pl.Date:
        return values.str.to_date("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        return values.str.to_datetime(time_unit=dtype.time_unit, time_zone=dtype.time_zone)
    return values.cast(dtype)


def _repeat_index(counts: list[int]) -> pl.Series:
    import numpy as np

    return pl.Series(np.repeat(np.arange(len(counts), dtype=np.uint32), counts))


def _from_millis(millis: int) -> datetime:
    return datetime.fromtimestamp(millis // 1000, UTC) + timedelta(milliseconds=millis % 1000)


def _decoded(value: Any) -> Any:
    """A metadata value as written now (a JSON value) or before (JSON text in a string)."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _strings(value: Any) -> list[str]:
    value = _decoded(value)
    return [str(v) for v in value] if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# --- replication: a commit file's raw actions and the objects it names ---------------------

#: A log file name: its version (20 digits), then ``.json`` (a commit) or a checkpoint /
#: checksum / compacted-log suffix.
_LOG_NAME_DIGITS = 20


def log_file_version(name: str) -> int | None:
    """The version a ``_delta_log`` file name belongs to (``00..07.json``,
    ``00..07.checkpoint.parquet``, ``00..07.crc``), None for other names (``_last_checkpoint``,
    temporary files)."""
    head = name[:_LOG_NAME_DIGITS]
    if len(name) > _LOG_NAME_DIGITS and head.isdigit() and name[_LOG_NAME_DIGITS] == ".":
        return int(head)
    return None


def parse_actions(raw: bytes) -> list[dict[str, Any]]:
    """The actions of a commit file's bytes (one JSON object a line)."""
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def referenced_files(actions: list[dict[str, Any]]) -> list[str]:
    """The objects a commit adds, relative to the table and decoded: the data files of its
    ``add`` actions and the change-data files of its ``cdc`` actions (deltalake writes no
    deletion vectors). Absolute paths (shallow clones) name objects outside the table and are
    left out: they are not the table's to copy."""
    out: list[str] = []
    for action in actions:
        for kind in ("add", "cdc"):
            body = action.get(kind)
            if body and _relative(body.get("path")):
                out.append(unquote(body["path"]))
    return list(dict.fromkeys(out))


def removed_files(actions: list[dict[str, Any]]) -> set[str]:
    """The data files a commit's ``remove`` actions take out of the table (decoded)."""
    return {unquote(a["remove"]["path"]) for a in actions
            if "remove" in a and _relative(a["remove"].get("path"))}


def commit_millis(actions: list[dict[str, Any]]) -> int | None:
    """The commit's own time (``commitInfo.timestamp``, ms since the epoch), None if absent."""
    for action in actions:
        if "commitInfo" in action:
            return _int(action["commitInfo"].get("timestamp"))
    return None


def version_at(lake: str, table: str, moment: datetime, latest: int) -> int | bool | None:
    """The latest version of ``table`` (at most ``latest``) committed at or before ``moment``,
    found by bisecting the commit files' timestamps (a few small reads, and no label shift
    when a commit lands meanwhile); None when the first version is younger than ``moment``,
    False when a commit file on the way is gone (log cleanup: ask the table's history)."""
    def stamp(version: int) -> datetime | bool | None:
        found = commit(lake, table, version)
        return False if found is None else found.timestamp

    first = stamp(0)
    if first is False or first is None:
        return False
    if first > moment:
        return None
    low, high = 0, latest  # invariant: version low was committed at or before moment
    while low < high:
        middle = (low + high + 1) // 2
        at = stamp(middle)
        if at is False or at is None:
            return False
        if at <= moment:
            low = middle
        else:
            high = middle - 1
    return low
def changed_partitions(lake: str, table: str, after: int, upto: int,
                       columns: tuple[str, ...] = ("market", "date")
                       ) -> set[tuple[str | None, ...]] | None:
    """The partitions (values of ``columns``, as the log's text) whose rows commits
    ``after + 1`` to ``upto`` of ``table`` changed, or None when a commit file is gone (log
    cleanup): the caller then looks at the whole table.

    Only ``add`` and ``remove`` actions with ``dataChange`` true count: compaction and
    Z-ordering rewrite files with ``dataChange`` false and change no row. Every writer (btlake's
    ingestion and re-derivation, a streaming append, any other Delta writer) leaves these
    actions, so what changed is known without reading a data file."""
    touched: set[tuple[str | None, ...]] = set()
    for version in range(after + 1, upto + 1):
        found = actions(lake, table, version)
        if found is None:
            return None
        for action in found:
            file = action.get("add") or action.get("remove")
            if not isinstance(file, dict) or file.get("dataChange", True) is False:
                continue
            values = file.get("partitionValues")
            if values is None:  # a remove without them (optional there): cannot tell
                return None
            touched.add(tuple(values.get(c) for c in columns))
    return touched
