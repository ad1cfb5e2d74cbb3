"""The peers' side of the benchmark: runs inside ``bench/.peers-venv`` (ArcticDB, MLflow) as a
long-lived process that answers one JSON request per line on stdin with one JSON line on stdout.

Every figure is measured here, around the peer's own call, with ``time.perf_counter``; loading
the input (Parquet into pandas) is never inside a timed region. This file imports nothing from
btlake: the peers' venv does not have it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

# The protocol owns the real stdout; anything a library prints goes to stderr.
_PROTOCOL = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

_ARCTIC: dict[str, Any] = {}
_FRAMES: dict[str, Any] = {}


def versions(_: dict) -> dict:
    out = {"python": sys.version.split()[0]}
    for name in ("arcticdb", "mlflow", "pandas", "pyarrow", "numpy", "matplotlib"):
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "?")
        except Exception as exc:  # a peer that failed to install
            out[name] = None
            out[f"{name}_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return out


def disk_bytes(path: str) -> int:
    """Allocated bytes under ``path`` (st_blocks: LMDB's map file is sparse)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


# --- ArcticDB --------------------------------------------------------------------------------


def _library(path: str, name: str, fresh: bool):
    import arcticdb as adb

    ac = _ARCTIC.get(path)
    if ac is None:
        Path(path).mkdir(parents=True, exist_ok=True)
        ac = adb.Arctic(f"lmdb://{path}?map_size=64GB")
        _ARCTIC[path] = ac
    if fresh and name in ac.list_libraries():
        ac.delete_library(name)
    if name not in ac.list_libraries():
        ac.create_library(name)
    return ac[name]


def load_frame(args: dict) -> dict:
    """Read a Parquet file into a pandas frame indexed by ``ts`` (untimed), kept for writes."""
    import pyarrow.parquet as pq

    table = pq.read_table(args["path"])
    df = table.to_pandas()
    df = df.set_index("ts")
    _FRAMES[args["key"]] = df
    return {"rows": len(df)}


def arctic_write(args: dict) -> dict:
    """Write the frame ``key`` into a fresh library, one ArcticDB symbol per value of ``by``
    (e.g. per market, or per market and symbol); return the write time and bytes on disk."""
    df = _FRAMES[args["key"]]
    by = args.get("by") or []
    path, name = args["path"], args["library"]
    lib = _library(path, name, fresh=True)
    groups = [(args.get("symbol", "all"), df)] if not by else [
        (".".join(map(str, k if isinstance(k, tuple) else (k,))), part)
        for k, part in df.groupby(by, sort=True)]
    empty = disk_bytes(path)
    t0 = time.perf_counter()
    for symbol, part in groups:
        lib.write(symbol, part)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "symbols": len(groups), "rows": len(df),
            "bytes": disk_bytes(path) - empty}


def arctic_append_days(args: dict) -> dict:
    """Write a Parquet file's rows into ``library`` (not fresh) as per-``by`` symbols, appending
    if the symbol exists: used to build the 20-day table from day chunks."""
    import pyarrow.parquet as pq

    df = pq.read_table(args["path"]).to_pandas().set_index("ts")
    lib = _library(args["path_lib"], args["library"], fresh=False)
    by = args["by"]
    existing = set(lib.list_symbols())
    for k, part in df.groupby(by, sort=True):
        symbol = ".".join(map(str, k if isinstance(k, tuple) else (k,)))
        if symbol in existing:
            lib.append(symbol, part)
        else:
            lib.write(symbol, part)
            existing.add(symbol)
    return {"rows": len(df)}


def arctic_read(args: dict) -> dict:
    """Time ``lib.read`` of one symbol over ``[start, end)`` with optional columns and an
    optional QueryBuilder filter on the ``symbol`` column; returns seconds and rows."""
    import arcticdb as adb
    import pandas as pd

    lib = _library(args["path"], args["library"], fresh=False)
    start = pd.Timestamp(args["start"])
    end = pd.Timestamp(args["end"]) - pd.Timedelta(1, "ns")  # ArcticDB ranges are inclusive
    q = None
    if args.get("filter_symbol"):
        q = adb.QueryBuilder()
        q = q[q["symbol"] == args["filter_symbol"]]
    t0 = time.perf_counter()
    frame = lib.read(args["symbol"], date_range=(start, end), columns=args.get("columns"),
                     query_builder=q).data
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows": len(frame)}


# --- MLflow ----------------------------------------------------------------------------------


def mlflow_load(args: dict) -> dict:
    """Bulk-load runs into a new MLflow SQLite store.

    MLflow creates its own schema (all migrations) and one real run through its API; the rest
    are inserted with ``executemany`` into MLflow's own tables (runs, params, latest_metrics,
    tags) in exactly the shape that real run has, because logging a million runs through the
    tracking API would take hours. The metric history table (``metrics``) stays empty:
    ``search_runs`` filters, orders and returns metrics from ``latest_metrics``. Input: a
    Parquet file with run_id, strategy_id, market, created_ms, one ``p_<name>`` column per
    param, ``m_<name>`` per metric.
    """
    import mlflow
    import pyarrow.parquet as pq
    from mlflow.tracking import MlflowClient

    db = Path(args["db"])
    if db.exists():
        db.unlink()
    artifacts = db.parent / f"{db.stem}-artifacts"
    shutil.rmtree(artifacts, ignore_errors=True)
    uri = f"sqlite:///{db}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("bench", artifact_location=artifacts.as_uri())
    probe = client.create_run(exp_id, run_name="probe")
    client.log_param(probe.info.run_id, "probe", "1")
    client.log_metric(probe.info.run_id, "probe", 1.0)
    client.set_terminated(probe.info.run_id)

    table = pq.read_table(args["path"])
    cols = {name: table[name].to_pylist() for name in table.column_names}
    n = table.num_rows
    params = [c for c in cols if c.startswith("p_")]
    metrics = [c for c in cols if c.startswith("m_")]
    t0 = time.perf_counter()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-1000000")
    probe_row = con.execute(
        "SELECT source_type, source_name, entry_point_name, user_id, status, lifecycle_stage, "
        "artifact_uri FROM runs WHERE run_uuid = ?", (probe.info.run_id,)).fetchone()
    src_type, src_name, entry, user, status, stage, artifact_probe = probe_row
    art_base = artifact_probe.rsplit("/", 2)[0]
    for t in ("params", "metrics", "latest_metrics", "tags"):
        con.execute(f"DELETE FROM {t} WHERE run_uuid = ?", (probe.info.run_id,))
    con.execute("DELETE FROM runs WHERE run_uuid = ?", (probe.info.run_id,))
    # Secondary indexes are dropped during the load and created again after it (one sort
    # each), and rows go in primary-key order: the same tables and indexes, built fast.
    indexes = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND "
        "tbl_name IN ('runs', 'params', 'metrics', 'latest_metrics', 'tags')").fetchall()
    for name, _ in indexes:
        con.execute(f'DROP INDEX "{name}"')
    uuids = [uuid.uuid4().hex for _ in range(n)]
    order = sorted(range(n), key=uuids.__getitem__)
    con.executemany(
        "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
        "user_id, status, start_time, end_time, deleted_time, source_version, lifecycle_stage, "
        "artifact_uri, experiment_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        ((uuids[i], cols["run_id"][i], src_type, src_name, entry, user, status,
          cols["created_ms"][i], cols["created_ms"][i] + 60_000, None, "", stage,
          f"{art_base}/{uuids[i]}/artifacts", int(exp_id)) for i in order))
    for p in sorted(params):
        values = cols[p]
        con.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)",
                        ((p[2:], str(values[i]), uuids[i]) for i in order
                         if values[i] is not None))
    for m in sorted(metrics):
        values = cols[m]
        con.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, "
                        "run_uuid) VALUES (?,?,?,?,?,?)",
                        ((m[2:], float(values[i]), cols["created_ms"][i], 0, 0, uuids[i])
                         for i in order if values[i] is not None))
    for key, col in (("market", "market"), ("mlflow.runName", "run_id")):
        con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)",
                        ((key, cols[col][i], uuids[i]) for i in order))
    for _, sql in indexes:
        con.execute(sql)
    con.commit()
    con.execute("ANALYZE")
    con.close()
    return {"seconds": time.perf_counter() - t0, "runs": n, "experiment_id": exp_id,
            "bytes": db.stat().st_size}


def mlflow_search(args: dict) -> dict:
    """Time ``MlflowClient.search_runs`` (paging through every match when ``max_results`` is
    more than one page); returns seconds and the number of runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{args['db']}")
    wanted = args.get("max_results")
    page = min(wanted or 50_000, 50_000)
    t0 = time.perf_counter()
    found, token = 0, None
    while True:
        result = client.search_runs([args["experiment_id"]], filter_string=args["filter"],
                                    order_by=args.get("order_by"), max_results=page,
                                    page_token=token)
        found += len(result)
        token = result.token
        if not token or (wanted is not None and found >= wanted):
            break
    return {"seconds": time.perf_counter() - t0, "rows": found}


def plot_png(args: dict) -> dict:
    """The ratios chart as PNG with matplotlib (the SVG is written without it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values, colors = args["labels"], args["values"], args["colors"]
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(labels) + 1.4))
    y = range(len(labels))
    ax.barh(list(y), values, color=colors)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.0f}x" if v >= 100 else f" {v:.2g}x", va="center", fontsize=8)
    ax.set_xlabel("btlake speed / peer speed (log scale; > 1 = btlake faster)")
    ax.set_title(args.get("title", "btlake vs peers"), fontsize=10)
    fig.tight_layout()
    fig.savefig(args["path"], dpi=110)
    plt.close(fig)
    return {"path": args["path"]}


COMMANDS = {name: fn for name, fn in globals().items()
            if callable(fn) and name in {"versions", "load_frame", "arctic_write",
                                         "arctic_append_days", "arctic_read", "mlflow_load",
                                         "mlflow_search", "plot_png", "drop_frame"}}


def drop_frame(args: dict) -> dict:
    _FRAMES.pop(args["key"], None)
    import gc

    gc.collect()
    return {}


COMMANDS["drop_frame"] = drop_frame


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            result = COMMANDS[request["cmd"]](request.get("args") or {})
            reply = {"ok": True, "result": result}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                     "trace": traceback.format_exc()[-2000:]}
        _PROTOCOL.write(json.dumps(reply, default=str) + "\n")
        _PROTOCOL.flush()


if __name__ == "__main__":
    main()
