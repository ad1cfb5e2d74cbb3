"""What ``btlake`` shows: rich tables, CSV and JSON documents, files by extension, and progress
on stderr.

Tables fit the terminal (long cells end in an ellipsis); piped or written to a file they keep
their natural width, so a script never sees a row folded over two lines. Every cell is plain
text to rich (no markup) with control characters escaped: values come from bundles, and a
bundle must not be able to style or rewrite the user's terminal.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from btlake_pipelines.errors import BtlakeError

if TYPE_CHECKING:
    import pyarrow as pa
    from rich.console import Console, RenderableType
    from rich.table import Table

#: ``--out`` extensions written as a table file; anything else receives the formatted text.
TABLE_FILES = (".parquet", ".csv", ".arrow")
_EXPORTS = {".parquet": "parquet", ".csv": "csv", ".arrow": "arrow", ".json": "json"}
#: Metrics shown as columns of ``btlake runs`` when runs have them.
KEY_METRICS = ("sharpe", "total_return", "max_drawdown")


def print_json(doc: Any, out: str | None = None) -> None:
    """``doc`` as one JSON document (the whole of stdout, or of ``out``)."""
    emit(json.dumps(doc, default=_json_value, ensure_ascii=False), out)


def emit(text: str, out: str | None = None) -> None:
    """``text`` on stdout, or into the file ``out`` (saying so on stderr)."""
    if out is None:
        sys.stdout.write(text + "\n")
        return
    with _writing(out):
        Path(out).write_text(text + "\n")
    note(f"wrote {out}")


def note(text: str) -> None:
    """A remark for the user that is not the command's output: on stderr."""
    sys.stderr.write(text + "\n")


def show(renderable: RenderableType, out: str | None = None) -> None:
    """A rich renderable on stdout (fitted to a terminal) or into the file ``out``."""
    if out is None:
        _print(renderable, sys.stdout)
        return
    with _writing(out), open(out, "w", encoding="utf-8") as f:
        _print(renderable, f)
    note(f"wrote {out}")


@contextmanager
def _writing(path: str) -> Iterator[None]:
    """Around a write to ``--out``: its folder is made, and a file that cannot be written is
    bad input (exit 2), not a failure of btlake."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        yield
    except OSError as exc:
        raise BtlakeError(f"--out {path}: cannot write it ({exc.strerror or exc})") from None


def _print(renderable: RenderableType, file: IO[str]) -> None:
    from rich.console import Console

    console = Console(file=file, highlight=False, markup=False, emoji=False)
    if console.is_terminal:
        console.print(renderable)
        return
    # not a terminal: the natural width, and no padding at the ends of lines
    wide = console.options.update_width(1_000_000)
    with console.capture() as captured:
        console.width = max(console.measure(renderable, options=wide).maximum, 1)
        console.print(renderable)
    file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, max_width: int = 40,
          title: str | None = None, marked: Callable[[dict[str, Any]], bool] | None = None
          ) -> Table:
    """An aligned table of ``rows`` under ``columns``, one line a row; rows for which ``marked``
    holds are shown bold. The first column is the row's key (a run id, a name) and is shown
    whole; other cells longer than ``max_width`` are cut with an ellipsis, and on a terminal
    too narrow for the table rich shrinks the widest of them first."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    out = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                title=title, title_justify="left", title_style="bold")
    for i, name in enumerate(columns):
        out.add_column(Text(safe(name)), no_wrap=i == 0)
    for row in rows:
        out.add_row(*(Text(cell(row.get(c), max_width if i else None), no_wrap=True,
                           overflow="ellipsis") for i, c in enumerate(columns)),
                    style="bold" if marked and marked(row) else "")
    return out


def cell(value: Any, max_width: int | None = None) -> str:
    """One value as table text: floats to 10 significant digits, lists joined, one line of at
    most ``max_width`` characters."""
    if isinstance(value, float):
        value = f"{value:.10g}"
    elif isinstance(value, list | tuple):
        value = ", ".join(map(str, value))
    text = safe(" ".join(("" if value is None else str(value)).split()))
    return text if max_width is None or len(text) <= max_width else text[: max_width - 1] + "…"


def safe(text: str) -> str:
    """``text`` with control characters escaped (``\\x1b`` stays visible, never acts)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


# --- runs ----------------------------------------------------------------------------------

def runs_table(records: list[dict[str, Any]], total: int, *, where: str = "",
               order_by: str = "") -> RenderableType:
    """Runs with their key metrics as columns, and the params the query names first."""
    from rich.console import Group
    from rich.text import Text

    mentioned = set(re.findall(r"(?:params|metrics)\.([A-Za-z0-9_.\-]+)", f"{where} {order_by}"))
    present = {k for r in records for k in r.get("metrics", {})}
    metric_cols = list(dict.fromkeys(m for m in (*KEY_METRICS, *sorted(mentioned))
                                     if m in present))[:4]
    rows = []
    for r in records:
        params = r.get("params") or {}
        ordered = {**{k: params[k] for k in params if k in mentioned}, **params}
        row = {"run_id": r["run_id"], "strategy_id": r.get("strategy_id"),
               "created_at": r.get("created_at"),
               "markets": ",".join(r.get("markets") or []), "params": _compact(ordered, 3)}
        row.update({m: _short(r.get("metrics", {}).get(m)) for m in metric_cols})
        rows.append(row)
    columns = ["run_id", "strategy_id", "created_at", "markets", *metric_cols, "params"]
    shown = f", showing {len(records)}" if len(records) < total else ""
    return Group(table(rows, columns, max_width=48), Text(f"{total} run(s){shown}"))


def runs_csv(records: list[dict[str, Any]]) -> str:
    """Runs as CSV: the run columns, then one ``params.NAME`` / ``metrics.NAME`` column each."""
    params = sorted({k for r in records for k in r.get("params", {})})
    metrics = sorted({k for r in records for k in r.get("metrics", {})})
    base = ["run_id", "strategy_id", "created_at", "engine_name", "engine_version",
            "code_version", "markets", "tags", "content_hash", "ingested_at"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*base, *(f"params.{k}" for k in params),
                     *(f"metrics.{k}" for k in metrics)])
    for r in records:
        row = {**{c: r.get(c) for c in base}, "markets": ";".join(r.get("markets") or []),
               "tags": ";".join(r.get("tags") or [])}
        values = [row[c] for c in base] + [r["params"].get(k) for k in params] + \
                 [r["metrics"].get(k) for k in metrics]
        writer.writerow(["" if v is None else v for v in values])
    return buf.getvalue().rstrip("\n")


def _compact(mapping: dict[str, Any], limit: int) -> str:
    items = [f"{k}={_short(v)}" for k, v in mapping.items() if v is not None]
    more = f" +{len(items) - limit}" if len(items) > limit else ""
    return " ".join(items[:limit]) + more


def _short(value: Any) -> Any:
    return f"{value:.4g}" if isinstance(value, float) else value


# --- tables, history, compare -------------------------------------------------------------

def preview(data: pa.Table, rows: int = 10) -> RenderableType:
    """The first ``rows`` rows of ``data`` and its row count; timestamps keep nanoseconds."""
    import pyarrow as pa
    from rich.console import Group
    from rich.text import Text

    head = data.slice(0, rows)
    for i, f in enumerate(head.schema):
        if pa.types.is_timestamp(f.type):  # as text: Python datetimes would drop nanoseconds
            head = head.set_column(i, f.name, head.column(i).cast(pa.string()))
    return Group(table(head.to_pylist(), head.column_names, max_width=32),
                 Text(f"{data.num_rows} row(s)"))


def history_table(versions: list[dict[str, Any]]) -> Table:
    """A table's versions, newest first, with the first runs of each commit."""
    def runs(version: dict[str, Any]) -> str:
        names = version.get("runs") or []
        count = version.get("run_count") or len(names)
        return ", ".join(names[:3]) + (f" (+{count - 3} more)" if count > 3 else "")

    rows = [{**v, "runs": runs(v)} for v in versions]
    return table(rows, ["version", "timestamp", "operation", "rows_added", "rows_removed",
                        "runs"], max_width=60)


def comparison(doc: dict[str, Any]) -> RenderableType:
    """Two runs side by side: params and metrics (differences in bold, marked ``*``), then
    the summaries of their trades and equity."""
    from rich.console import Group
    from rich.text import Text

    a, b = doc["runs"]
    parts: list[RenderableType] = []
    for section in ("params", "metrics"):
        rows = [{"name": k, a: v["a"], b: v["b"], "differs": "*" if v["differs"] else ""}
                for k, v in doc[section].items()]
        parts.append(table(rows, ["name", a, b, "differs"], title=f"{section}:",
                           marked=lambda row: bool(row["differs"]))
                     if rows else Text(f"{section}: (none)"))
        parts.append(Text(""))
    for part, summary in doc["summary"].items():
        keys = sorted(set(summary["a"]) | set(summary["b"]))
        rows = [{"name": k, a: summary["a"].get(k), b: summary["b"].get(k)} for k in keys]
        parts += [table(rows, ["name", a, b], title=f"{part}:"), Text("")]
    return Group(*parts[:-1])


# --- files ---------------------------------------------------------------------------------

def export(data: pa.Table, path: str) -> str:
    """Write ``data`` to ``path`` in the format its extension names; returns the format."""
    import pyarrow as pa

    kind = _EXPORTS.get(Path(path).suffix.lower())
    if kind is None:
        raise BtlakeError(f"--out {path}: use a .parquet, .csv or .arrow file name")
    with _writing(path):
        if kind == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(data, path, compression="zstd")
        elif kind == "csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(_flat(data), path)
        elif kind == "arrow":
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, data.schema) as out:
                out.write_table(data)
        else:
            Path(path).write_text(json.dumps(data.to_pylist(), default=_json_value))
    return kind


def _flat(data: pa.Table) -> pa.Table:
    """CSV has no nested types: structs, lists (large ones too) and maps become JSON text."""
    import pyarrow as pa

    for i, f in enumerate(data.schema):
        if pa.types.is_nested(f.type):
            text = [None if v is None else json.dumps(v, default=_json_value)
                    for v in data.column(i).to_pylist()]
            data = data.set_column(i, f.name, pa.array(text, pa.string()))
    return data


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# --- progress ------------------------------------------------------------------------------

@contextmanager
def progress(what: str) -> Iterator[Callable[[str], None]]:
    """A callable naming the step under way: a spinner on a terminal, a line per step on
    stderr otherwise (so a log shows where a long command spent its time)."""
    console = _stderr()
    if not console.is_terminal:
        yield lambda step: console.print(f"{what} {step} ...")
        return
    with console.status(f"{what} ...") as status:
        yield lambda step: status.update(f"{what} {step} ...")


@contextmanager
def bar() -> Iterator[Callable[[str, int, int], None] | None]:
    """A callable showing ``(phase, done, total)`` as rich progress bars, one per phase, on a
    terminal's stderr, erased when done; None when stderr is not a terminal (a log or a pipe
    then gets the command's own lines only, as before)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = _stderr()
    if not console.is_terminal:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as shown:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = shown.add_task(safe(phase), total=total)
            shown.update(tasks[phase], completed=done, total=total)

        yield update


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, markup=False, emoji=False)
