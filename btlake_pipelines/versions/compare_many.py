"""Two or more runs side by side: every section in one shape, ``name -> {values, differs}``,
so a front end renders metadata, params, metrics and summaries with the same code and never
keeps its own list of fields (the metadata fields are those of ``btlake compare``)."""

from __future__ import annotations

import json
from typing import Any

from btlake_pipelines.errors import QueryError
from btlake_pipelines.storage.catalog import Catalog
from btlake_pipelines.versions.compare import _brief, equity_summary, run_record, trade_summary

MAX_RUNS = 12
SECTIONS = ("metadata", "params", "metrics", "summary")


def _rows(ids: list[str], by_run: dict[str, dict[str, Any]], names: list[str] | None = None
          ) -> dict[str, dict[str, Any]]:
    """``name -> {"values": {run: value}, "differs": not all equal}``; names sorted unless
    given (a run without the name has null)."""
    if names is None:
        names = sorted({name for values in by_run.values() for name in values})
    out = {}
    for name in names:
        values = {r: by_run[r].get(name) for r in ids}
        distinct = {json.dumps(v, sort_keys=True, default=str) for v in values.values()}
        out[name] = {"values": values, "differs": len(distinct) > 1}
    return out


def compare_many(catalog: Catalog, run_ids: list[str]) -> dict[str, Any]:
    """``runs`` (the ids, repeats dropped) and, for each of :data:`SECTIONS`, every name any of
    them has. ``summary`` names are ``trades.NAME`` then ``equity.NAME``."""
    ids = list(dict.fromkeys(run_ids))
    if not 2 <= len(ids) <= MAX_RUNS:
        raise QueryError(f"compare needs 2 to {MAX_RUNS} different run ids ({{param}}), got "
                         f"{len(ids)}", param="run")
    records = {r: run_record(catalog, r) for r in ids}
    briefs = {r: _brief(records[r]) for r in ids}
    summaries = {r: {**{f"trades.{k}": v for k, v in trade_summary(catalog, r).items()},
                     **{f"equity.{k}": v for k, v in equity_summary(catalog, r).items()}}
                 for r in ids}
    return {
        "runs": ids,
        "metadata": _rows(ids, briefs, names=list(briefs[ids[0]])),
        "params": _rows(ids, {r: records[r].get("params") or {} for r in ids}),
        "metrics": _rows(ids, {r: records[r].get("metrics") or {} for r in ids}),
        "summary": _rows(ids, summaries,
                         names=list(dict.fromkeys(k for r in ids for k in summaries[r]))),
    }
