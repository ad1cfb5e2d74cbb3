"""``runs --where``: the predicate language over params, metrics and run columns."""

from __future__ import annotations

import pytest

from btlake_pipelines import Lake
from btlake_pipelines.errors import QueryError
from btlake_pipelines.ingest import ingest
from btlake_pipelines.landing.local import LocalLandingZone
from tests.core import bundles as B

RUNS = {
    "mom-a": dict(strategy_id="momentum", params={"lookback": 10, "mode": "fast"},
                  metrics={"sharpe": 0.5}, markets=["XNAS"]),
    "mom-b": dict(strategy_id="momentum", params={"lookback": 30, "mode": "slow"},
                  metrics={"sharpe": 1.8}, markets=["XNAS"]),
    "mr-c": dict(strategy_id="mean_rev", params={"lookback": 50, "mode": "fast", "hedge": True},
                 metrics={"sharpe": 2.2, "total_return": 0.3}, markets=["XNYS"]),
    "mr-d": dict(strategy_id="mean_rev", params={"window": 5}, metrics={"sharpe": None},
                 markets=["XNYS"], created_at="2024-01-01T00:00:00Z"),
}


@pytest.fixture
def lake(dirs) -> Lake:
    for run_id, fields in RUNS.items():
        B.backtest(dirs.landing, run_id, **fields)
    ingest(dirs.lake, LocalLandingZone(dirs.landing))
    return Lake(dirs.lake)


def ids(table) -> set[str]:
    return set(table.column("run_id").to_pylist())


@pytest.mark.parametrize(("where", "expected"), [
    ("metrics.sharpe > 1", {"mom-b", "mr-c"}),
    ("metrics.sharpe > 1 and params.lookback < 40", {"mom-b"}),
    ("params.lookback <= 10 or metrics.sharpe >= 2.2", {"mom-a", "mr-c"}),
    ("not params.mode = 'fast'", {"mom-b"}),
    ("params.mode in ('fast', 'medium')", {"mom-a", "mr-c"}),
    ("params.mode not in ('fast')", {"mom-b"}),
    ("strategy_id like 'mom%'", {"mom-a", "mom-b"}),
    ("strategy_id like 'mean_re_'", {"mr-c", "mr-d"}),
    ("run_id like 'M%'", set()),
    ("params.hedge = true", {"mr-c"}),
    ("metrics.total_return >= 3e-1", {"mr-c"}),
    ("metrics.sharpe is null", {"mr-d"}),
    ("(params.lookback > 5 and params.lookback < 40) or not (metrics.sharpe < 2)",
     {"mom-a", "mom-b", "mr-c"}),
    ("engine.name = 'testengine' and markets = 'XNYS'", {"mr-c", "mr-d"}),
    ("created_at < '2024-02-01'", {"mr-d"}),
    ("params.window > -1.5e1", {"mr-d"}),
])
def test_where_language(lake, where, expected):
    assert ids(lake.runs(where=where)) == expected


def test_missing_param_matches_no_comparison_either_way(lake):
    assert ids(lake.runs(where="params.window = 5")) == {"mr-d"}
    assert ids(lake.runs(where="params.window != 5")) == set()
    assert ids(lake.runs(where="not params.window = 5")) == set()


@pytest.mark.parametrize(("where", "message"), [
    ("params.lookback = 'ten'", "params.lookback is a number"),
    ("metrics.sharpe > 'x'", "metrics.sharpe is a number"),
    ("params.mode > 3", "params.mode is a string"),
    ("metrics.sharpe >", "expected a value"),
    ("nosuch = 1", "unknown field 'nosuch'"),
    ("run_id = 'a' and", "expected a field name"),
    ("(metrics.sharpe > 1", r"expected \)"),
    ("metrics.sharpe > 1; drop table runs", "unexpected"),
    ("strategy_id like 5", "quoted pattern"),
])
def test_bad_predicates_raise_query_errors(lake, where, message):
    with pytest.raises(QueryError, match=message):
        lake.runs(where=where)


def test_options_order_and_limit(lake):
    assert ids(lake.runs(strategy="mom*")) == {"mom-a", "mom-b"}
    assert ids(lake.runs(market="XNYS")) == {"mr-c", "mr-d"}
    assert ids(lake.runs(since="2024-02-01")) == {"mom-a", "mom-b", "mr-c"}
    assert ids(lake.runs(until="2024-02-01")) == {"mr-d"}
    top = lake.runs(order_by="metrics.sharpe", desc=True, limit=2)
    assert top.column("run_id").to_pylist() == ["mr-c", "mom-b"]
    frame, total = lake.search(order_by="params.lookback", limit=1)
    assert total == 4 and frame["run_id"].to_list() == ["mom-a"]


def test_compare_marks_differences_and_summarises(lake):
    doc = lake.compare("mom-a", "mom-b")
    assert doc["runs"] == ["mom-a", "mom-b"]
    assert doc["params"]["lookback"] == {"a": 10, "b": 30, "differs": True}
    assert doc["metrics"]["sharpe"]["differs"] is True
    assert doc["summary"]["trades"]["a"]["rows"] == 4
    assert doc["summary"]["equity"]["b"]["end"] == pytest.approx(1_000_400.0)
