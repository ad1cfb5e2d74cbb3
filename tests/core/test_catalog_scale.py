"""The run catalog at scale in names and runs (contract section 6).

- 10,000 distinct param names over 1,000 runs search and order exactly as a plain-Python
  reference says, with SQL null logic, and the table's schema does not grow with the names.
- Random ``--where`` expressions over runs whose params change type from run to run match the
  reference through the catalog's long tables, across several segments with dead rows.
- A lake written in the struct layout reads the same before, during and after its migration
  (by ingestion and by ``maintain``), in one commit, with the old versions still readable.
- A long-lived ``Lake`` sees new and replaced runs by reading only the files the new commits
  added, and loads the table again only when the log cannot be followed.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from btlake_pipelines import Lake
from btlake_pipelines.bundles.loader import LoadedBundle
from btlake_pipelines.contract.manifest import Manifest
from btlake_pipelines.errors import QueryError
from btlake_pipelines.ingest import ingest
from btlake_pipelines.landing.local import LocalLandingZone
from btlake_pipelines.metadata import runs_migration
from btlake_pipelines.metadata.runs_table import (
    _struct,
    metric_entries,
    param_entries,
    run_rows,
)
from btlake_pipelines.query.search import matching_rows, runs_to_records
from btlake_pipelines.query.where import parse_where
from btlake_pipelines.storage import delta, delta_log
from btlake_pipelines.storage.maintenance import maintain
from btlake_pipelines.storage.runs_index import RunsView, Segment
from tests.core import bundles as B

BASE = datetime(2024, 1, 1, tzinfo=UTC)

# --- a reference evaluator: SQL three-valued logic over plain dicts ----------------------------


def kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else "string"


def compare(value: Any, op: str, lit: Any) -> bool | None:
    """``value op lit`` as SQL: null (a missing value, or one of another type) is unknown."""
    if value is None or kind_of(value) != kind_of(lit):
        return None
    return {"=": value == lit, "!=": value != lit, "<": value < lit, "<=": value <= lit,
            ">": value > lit, ">=": value >= lit}[op]


def k_and(a, b):
    return False if a is False or b is False else None if a is None or b is None else True


def k_or(a, b):
    return True if a is True or b is True else None if a is None or b is None else False


def k_not(a):
    return None if a is None else not a


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(float(value)) if isinstance(value, float) else str(value)


# --- writing runs rows through the real row builder and writer ----------------------------------


def run_bundle(run_id: str, params: dict[str, Any], metrics: dict[str, float | None],
               created_at: datetime) -> LoadedBundle:
    manifest = Manifest(run_id=run_id, kind="backtest", created_at=created_at, tables={},
                        strategy_id=run_id.split("-")[0], engine_name="e", engine_version="1",
                        params=params, metrics=metrics, markets=("XNAS",),
                        raw={"run_id": run_id, "params": params, "metrics": metrics})
    return LoadedBundle(run_id, manifest, f"hash-{run_id}", f"/landing/{run_id}")


def write_runs(lake: str, bundles: list[LoadedBundle]) -> int:
    rows = run_rows(bundles, versions={b.name: {} for b in bundles},
                    archive={b.name: f"/archive/{b.name}" for b in bundles},
                    ingested_at=BASE, batch_id="b")
    return delta.write(lake, "runs", rows, predicate=None, metadata={"btlake.batch": "b"})


# --- 10,000 distinct param names ----------------------------------------------------------------

N_NAMES = 10_000
N_RUNS = 1_000


def wide_runs() -> list[tuple[str, dict[str, Any], dict[str, float | None], datetime]]:
    """Run i has names p(10i) .. p(10i + 9 + i % 11) (mod 10,000): every name is used, most by
    two runs; name c holds a number, a string or a bool by c % 3; plus shared ``lookback``,
    ``mode`` and 505 metric names."""
    rng = random.Random(7)
    out = []
    for i in range(N_RUNS):
        params: dict[str, Any] = {}
        for j in range(10 + i % 11):
            c = (i * 10 + j) % N_NAMES
            params[f"p{c:05d}"] = (rng.choice([rng.randint(-3, 3), round(rng.uniform(-1, 1), 3)])
                                   if c % 3 == 0 else rng.choice(["a", "b", "ab", "c'd"])
                                   if c % 3 == 1 else rng.random() < 0.5)
        params["lookback"] = i % 50
        params["mode"] = "fast" if i % 2 else "slow"
        metrics: dict[str, float | None] = {f"m{(i * 3 + j) % 500:04d}": rng.gauss(0, 1)
                                            for j in range(5)}
        metrics["sharpe"] = None if i % 7 == 0 else rng.gauss(0, 1)
        out.append((f"wide-{i:04d}", params, metrics, BASE + timedelta(hours=5 * i)))
    return out


@pytest.fixture(scope="module")
def wide_lake(tmp_path_factory) -> tuple[Lake, list]:
    lake = str(tmp_path_factory.mktemp("wide") / "lake")
    runs = wide_runs()
    for start in range(0, N_RUNS, 250):  # four commits, each over ~50 date partitions
        write_runs(lake, [run_bundle(*r) for r in runs[start:start + 250]])
    return Lake(lake), runs


def ids(table: pa.Table) -> list[str]:
    return table.column("run_id").to_pylist()


def test_schema_and_commits_do_not_grow_with_names(wide_lake, tmp_path):
    lake, _ = wide_lake
    small = str(tmp_path / "small")
    write_runs(small, [run_bundle("one-0", {"x": 1}, {"sharpe": 1.0}, BASE)])
    from deltalake import DeltaTable

    wide = DeltaTable(f"{lake.uri}/runs").schema().to_arrow()
    assert pa.schema(wide) == pa.schema(DeltaTable(f"{small}/runs").schema().to_arrow())
    # the schema is written once and is small; later commits carry files, not schema
    log = sorted(Path(lake.uri, "runs", "_delta_log").glob("*.json"))
    actions = [[json.loads(line) for line in p.read_text().splitlines()] for p in log]
    schemas = [a["metaData"]["schemaString"] for c in actions for a in c if "metaData" in a]
    assert len(log) == 4 and len(schemas) == 1 and len(schemas[0]) < 8_000


def wide_queries() -> list[tuple[str, Any]]:
    """(--where text, reference predicate over (params, metrics)) pairs."""
    p = "params."

    def leaf(name: str, op: str, lit: Any):
        section, _, key = name.partition(".")
        return lambda ps, ms: compare((ps if section == "params" else ms).get(key), op, lit)

    fixed = [
        ("params.p00042 > 0", leaf(p + "p00042", ">", 0)),
        ("params.p00043 = 'a'", leaf(p + "p00043", "=", "a")),
        ("params.p00044 = true", leaf(p + "p00044", "=", True)),
        ("params.p00042 > 0 or params.p09999 <= 0",
         lambda ps, ms: k_or(leaf(p + "p00042", ">", 0)(ps, ms),
                             leaf(p + "p09999", "<=", 0)(ps, ms))),
        ("not params.p00042 > 0", lambda ps, ms: k_not(leaf(p + "p00042", ">", 0)(ps, ms))),
        ("params.p00042 is null", lambda ps, ms: "p00042" not in ps),
        ("params.p00043 is not null", lambda ps, ms: "p00043" in ps),
        ("params.p00043 in ('a', 'c''d')",
         lambda ps, ms: None if "p00043" not in ps else ps["p00043"] in ("a", "c'd")),
        ("params.p00043 not in ('a')",
         lambda ps, ms: None if "p00043" not in ps else ps["p00043"] != "a"),
        ("params.p00046 like 'a%'",
         lambda ps, ms: None if "p00046" not in ps else ps["p00046"].startswith("a")),
        ("metrics.m0042 >= 0 and params.lookback < 25",
         lambda ps, ms: k_and(leaf("metrics.m0042", ">=", 0)(ps, ms),
                              leaf(p + "lookback", "<", 25)(ps, ms))),
        ("metrics.sharpe is null", lambda ps, ms: ms.get("sharpe") is None),
        ("params.lookback >= 10 and params.mode = 'fast' and metrics.sharpe > 0",
         lambda ps, ms: k_and(k_and(leaf(p + "lookback", ">=", 10)(ps, ms),
                                    leaf(p + "mode", "=", "fast")(ps, ms)),
                              leaf("metrics.sharpe", ">", 0)(ps, ms))),
        ("params.nosuch > 1 or params.p00043 = 'b'",
         lambda ps, ms: k_or(None, leaf(p + "p00043", "=", "b")(ps, ms))),
    ]
    rng = random.Random(3)
    for c in rng.sample(range(N_NAMES), 150):  # names all over the dictionary
        name = f"p{c:05d}"
        op = rng.choice(["=", "!=", "<", "<=", ">", ">="])
        lit = rng.choice([0, 1, -0.5]) if c % 3 == 0 else rng.choice(["a", "b", "c'd"]) \
            if c % 3 == 1 else rng.random() < 0.5
        if c % 3:
            op = rng.choice(["=", "!="])
        fixed.append((f"params.{name} {op} {literal(lit)}", leaf(p + name, op, lit)))
    return fixed


def test_ten_thousand_names_search_like_the_reference(wide_lake):
    lake, runs = wide_lake
    newest_first = sorted(runs, key=lambda r: r[3], reverse=True)
    for text, ref in wide_queries():
        want = [r[0] for r in newest_first if ref(r[1], r[2]) is True]
        assert ids(lake.runs(where=text)) == want, text
    view = lake.catalog.runs_view()
    assert view is not None and view.live == N_RUNS
    names = {n for s in view.segments for g in s.params.values() for n in g.names}
    assert len(names) == N_NAMES + 2


@pytest.mark.parametrize(("field", "desc"), [("params.p00042", False), ("params.p00042", True),
                                              ("params.p00043", False), ("metrics.m0042", True),
                                              ("params.lookback", True), ("metrics.sharpe", False)])
def test_ten_thousand_names_order_like_the_reference(wide_lake, field, desc):
    lake, runs = wide_lake
    section, _, key = field.partition(".")

    def value(r):
        return (r[1] if section == "params" else r[2]).get(key)

    have = sorted((r for r in runs if value(r) is not None), key=lambda r: r[0])
    have.sort(key=value, reverse=desc)  # stable: ties stay by run id
    missing = sorted(r[0] for r in runs if value(r) is None)  # nulls last, by run id
    want = [r[0] for r in have] + missing
    assert ids(lake.runs(order_by=field, desc=desc)) == want
    frame, total = lake.search(order_by=field, desc=desc, limit=5, offset=3)
    assert total == N_RUNS and frame["run_id"].to_list() == want[3:8]
    where = "params.lookback < 5"
    got = ids(lake.runs(where=where, order_by=field, desc=desc))
    assert got == [r for r in want if int(r.split("-")[1]) % 50 < 5]


def test_ten_thousand_names_results_keep_their_shape(wide_lake):
    lake, runs = wide_lake
    by_id = {r[0]: r for r in runs}
    frame, total = lake.search(where="params.p00042 is not null or params.p00043 = 'a'")
    assert total == frame.height > 0
    assert "param_values" not in frame.columns and "params_num" not in frame.columns
    for record in runs_to_records(frame):
        _, params, metrics, _ = by_id[record["run_id"]]
        assert record["params"] == params
        assert record["metrics"] == {k: v for k, v in metrics.items() if v is not None}
    table = lake.runs(where="params.lookback = 7", limit=3)
    for row in table.to_pylist():  # the metrics struct: the returned runs' names
        assert row["metrics"]["sharpe"] == by_id[row["run_id"]][2]["sharpe"]
    with pytest.raises(QueryError, match=r"params\.p00042 is a number"):
        lake.runs(where="params.p00042 = 'x'")
    with pytest.raises(QueryError, match=r"params\.p00043 is a string"):
        lake.runs(where="params.p00043 > 3")
    assert lake.compare("wide-0004", "wide-0005")["params"]["p00042"]["a"] == \
        by_id["wide-0004"][1]["p00042"]


# --- random expressions through the long tables --------------------------------------------------

NAMES = ["x", "y", "s"]
VALUE = st.one_of(st.integers(-3, 3), st.floats(-2, 2, allow_nan=False, width=32),
                  st.sampled_from(["a", "b", "", "a'b", "%"]), st.booleans())


@st.composite
def catalog_runs(draw) -> list[tuple[str, dict[str, Any], dict[str, float | None]]]:
    """Runs whose params change type from one run to the next (a name may be a number in one
    run and a string in another), some with a metric."""
    out = []
    for i in range(draw(st.integers(1, 9))):
        params = {n: draw(VALUE) for n in NAMES if draw(st.booleans())}
        metrics = {"m": draw(st.floats(-5, 5, allow_nan=False))} if draw(st.booleans()) else {}
        out.append((f"r{i}", params, metrics))
    return out


@st.composite
def leaves(draw):
    name = draw(st.sampled_from([*NAMES, "nope"]))
    if draw(st.integers(0, 5)) == 0:
        lit = draw(st.floats(-5, 5, allow_nan=False))
        op = draw(st.sampled_from(["<", ">=", "="]))
        return f"metrics.m {op} {literal(lit)}", ("metric", op, lit)
    if draw(st.integers(0, 6)) == 0:
        return f"params.{name} is null", ("null", name)
    lit = draw(VALUE)
    op = draw(st.sampled_from(["=", "!=", "<", ">="])) if not isinstance(lit, bool) \
        else draw(st.sampled_from(["=", "!="]))
    return f"params.{name} {op} {literal(lit)}", ("cmp", name, op, lit)


def expressions():
    def combine(t):
        (a, ra), (b, rb), word = t
        return f"({a} {word} {b})", (word, ra, rb)

    return st.recursive(leaves(), lambda inner: st.one_of(
        inner.map(lambda e: (f"not {e[0]}", ("not", e[1]))),
        st.tuples(inner, inner, st.sampled_from(["and", "or"])).map(combine)), max_leaves=5)


def evaluate(node, params, metrics):
    op = node[0]
    if op == "not":
        return k_not(evaluate(node[1], params, metrics))
    if op in ("and", "or"):
        a, b = evaluate(node[1], params, metrics), evaluate(node[2], params, metrics)
        return k_and(a, b) if op == "and" else k_or(a, b)
    if op == "null":
        return node[1] not in params
    if op == "metric":
        return compare(metrics.get("m"), node[1], node[2])
    _, name, cmp, lit = node
    return compare(params.get(name), cmp, lit)


def type_errors(node, runs) -> bool:
    """Whether the expression compares a param with a literal of a kind no run stores for it
    while some run stores it (the language's error)."""
    if node[0] == "not":
        return type_errors(node[1], runs)
    if node[0] in ("and", "or"):
        return type_errors(node[1], runs) or type_errors(node[2], runs)
    if node[0] != "cmp":
        return False
    kinds = {kind_of(p[node[1]]) for _, p, _ in runs if node[1] in p}
    return bool(kinds) and kind_of(node[3]) not in kinds


def view_of(runs) -> RunsView:
    """The runs in two segments, the first with decoys whose files were removed."""
    def frame(rows, file_of):
        return pl.DataFrame({
            "run_id": [r[0] for r in rows],
            "param_values": pl.Series([param_entries(r[1]) for r in rows], dtype=pl.List(
                pl.Struct({"name": pl.String, "num": pl.Float64, "str": pl.String,
                           "bool": pl.Boolean}))),
            "metric_values": pl.Series([metric_entries(r[2]) for r in rows], dtype=pl.List(
                pl.Struct({"name": pl.String, "value": pl.Float64}))),
            delta_log.FILE_COLUMN: [file_of(i) for i in range(len(rows))],
        })

    half = len(runs) // 2
    decoys = [(f"ghost{i}", {n: "zz" for n in NAMES}, {"m": 99.0}) for i in range(2)]
    first = [*runs[:half], *decoys]
    a = Segment.from_frame(frame(first, lambda i: "live" if i < half else "gone"))
    b = Segment.from_frame(frame(runs[half:], lambda i: f"f{i % 2}"))
    return RunsView([a.without(["gone"]), b])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(runs=catalog_runs(), expr=expressions())
def test_where_through_the_long_tables_matches_the_reference(runs, expr):
    text, node = expr
    view = view_of(runs)
    try:
        rows = matching_rows(view, parse_where(text, view.frame.schema, view))
    except QueryError:
        assert type_errors(node, runs), text
        return
    assert not type_errors(node, runs), text
    got = view.frame.get_column("run_id").gather(rows).to_list()
    want = [r[0] for r in runs if evaluate(node, r[1], r[2]) is True]
    assert sorted(got) == sorted(want), text


# --- migration of a lake written in the struct layout ---------------------------------------------

LEGACY_PARAMS = (("params_num", pa.float64(),
                  lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
                 ("params_str", pa.string(), lambda v: isinstance(v, str)),
                 ("params_bool", pa.bool_(), lambda v: isinstance(v, bool)))


def to_struct_layout(table: pa.Table) -> pa.Table:
    """``runs`` rows as the struct layout stored them (the code before ``param_values``:
    struct columns over the union of names, added after the other columns)."""
    params = [json.loads(p) for p in table.column("params").to_pylist()]
    metrics = [{e["name"]: e["value"] for e in m}
               for m in table.column("metric_values").to_pylist()]
    out = table.drop_columns(["param_values", "metric_values"])
    for name, typ, keep in LEGACY_PARAMS:
        struct = _struct([{k: (float(v) if typ == pa.float64() else v)
                           for k, v in p.items() if keep(v)} for p in params], typ)
        if struct is not None:
            out = out.append_column(name, struct)
    struct = _struct(metrics, pa.float64())
    if struct is not None:
        out = out.append_column("metrics", struct)
    return out


def rewrite_in_struct_layout(lake: str) -> int:
    """Rewrite ``lake``'s runs table in the struct layout, in two commits so that its files
    have different struct fields (schema merge), as a lake ingested over time has."""
    from deltalake import DeltaTable, write_deltalake

    uri = f"{lake}/runs"
    rows = to_struct_layout(pl.read_delta(uri).sort("run_id").to_arrow())
    cut = rows.num_rows // 2
    write_deltalake(uri, rows.slice(0, cut), mode="overwrite", schema_mode="overwrite",
                    partition_by=["date"])
    write_deltalake(uri, rows.slice(cut), mode="append", schema_mode="merge",
                    partition_by=["date"])
    return DeltaTable(uri).version()


MIGRATION_RUNS = {
    "mig-a": dict(params={"lookback": 10, "mode": "fast", "hedge": True},
                  metrics={"sharpe": 0.5, "total_return": 0.1}),
    "mig-b": dict(params={"lookback": 30.5, "mode": "slow"}, metrics={"sharpe": None},
                  created_at="2024-02-01T00:00:00Z"),
    "mig-c": dict(params={"window": 5, "hedge": False}, metrics={"sharpe": 2.0, "n": 7.0},
                  created_at="2024-02-03T00:00:00Z"),
    "mig-d": dict(params={}, metrics={}, created_at="2024-02-03T00:00:00Z"),
}
SEARCHES = [dict(where="params.lookback > 5"), dict(where="params.hedge = true or "
                                                          "metrics.sharpe is null"),
            dict(where="params.mode like 's%'"), dict(order_by="metrics.sharpe", desc=True),
            dict(order_by="params.lookback"), dict(where="metrics.n = 7")]


def snapshot(lake: Lake, without: str | None = None) -> tuple:
    """What a reader sees: every run (Arrow rows and JSON records) and some searches' ids."""
    def keep(rows):
        return [r for r in rows if r != without and (not isinstance(r, dict)
                                                      or r["run_id"] != without)]

    runs = keep(sorted(lake.runs().to_pylist(), key=lambda r: r["run_id"]))
    records = keep(sorted(runs_to_records(lake.search()[0]), key=lambda r: r["run_id"]))
    found = tuple(tuple(keep(ids(lake.runs(**s)))) for s in SEARCHES)
    return runs, records, found


@pytest.fixture
def struct_lake(dirs) -> tuple[str, tuple, int]:
    for run_id, fields in MIGRATION_RUNS.items():
        B.backtest(dirs.landing, run_id, **fields)
    ingest(dirs.lake, LocalLandingZone(dirs.landing))
    before = snapshot(Lake(dirs.lake))
    version = rewrite_in_struct_layout(dirs.lake)
    return dirs.lake, before, version


def columns(lake: str) -> list[str]:
    from deltalake import DeltaTable

    return pa.schema(DeltaTable(f"{lake}/runs").schema().to_arrow()).names


def test_a_struct_layout_lake_reads_the_same_before_migration(struct_lake):
    lake, before, _ = struct_lake
    assert runs_migration.is_legacy(columns(lake))
    assert {"params_num", "params_str", "params_bool", "metrics"} <= set(columns(lake))
    assert snapshot(Lake(lake)) == before
    assert Lake(lake).compare("mig-a", "mig-c")["metrics"]["n"] == {"a": None, "b": 7.0,
                                                                    "differs": True}


def test_first_ingest_migrates_in_one_commit_and_reads_the_same(struct_lake, dirs):
    from deltalake import DeltaTable

    lake, before, legacy_version = struct_lake
    warm = Lake(lake)
    assert snapshot(warm) == before
    B.backtest(dirs.landing, "mig-e", params={"lookback": 99}, metrics={"sharpe": 9.0})
    ingest(lake, LocalLandingZone(dirs.landing))
    assert not runs_migration.is_legacy(columns(lake))
    history = DeltaTable(f"{lake}/runs").history()
    ours = [h for h in history if h.get("btlake.maintenance") == "migrate_runs_layout"]
    assert [h["version"] for h in ours] == [legacy_version + 1]  # one commit, then the rows
    assert DeltaTable(f"{lake}/runs").version() == legacy_version + 2
    for reader in (warm, Lake(lake)):
        assert snapshot(reader, without="mig-e") == before
        assert ids(reader.runs(where="metrics.sharpe > 8")) == ["mig-e"]
    # time travel still reads the struct layout
    old = Lake(lake).read("runs", as_of=legacy_version)
    assert "params_num" in old.column_names and old.num_rows == len(MIGRATION_RUNS)
    assert runs_migration.migrate(lake) is None  # nothing left to do


def test_maintain_migrates_and_reads_the_same(struct_lake):
    lake, before, _ = struct_lake
    maintain(lake)
    assert not runs_migration.is_legacy(columns(lake))
    assert snapshot(Lake(lake)) == before


def test_a_lake_written_in_both_layouts_reads_and_migrates(struct_lake):
    """Rows in the new layout added to a struct-layout table (a writer that does not migrate
    first, e.g. a re-derivation) read correctly next to the old ones, before and after."""
    lake, before, _ = struct_lake
    write_runs(lake, [run_bundle("mix-z", {"lookback": 77, "mode": "mixed"}, {"sharpe": 5.0},
                                 datetime(2024, 2, 3, tzinfo=UTC))])
    assert {"params_num", "param_values"} <= set(columns(lake))
    for _ in range(2):
        runs, records, _ = snapshot(Lake(lake), without="mix-z")
        assert (runs, records) == before[:2]
        assert ids(Lake(lake).runs(where="params.lookback > 50")) == ["mix-z"]
        assert ids(Lake(lake).runs(order_by="metrics.sharpe", desc=True, limit=1)) == ["mix-z"]
        runs_migration.migrate(lake)
    assert not runs_migration.is_legacy(columns(lake))


def test_migration_of_an_already_current_or_missing_table_does_nothing(tmp_path, dirs):
    assert runs_migration.migrate(str(tmp_path / "none")) is None
    B.backtest(dirs.landing, "cur-a")
    ingest(dirs.lake, LocalLandingZone(dirs.landing))
    assert runs_migration.migrate(dirs.lake) is None


# --- a long-lived Lake stays current at the cost of the change ----------------------------------


def added_files(lake: str, version: int) -> int:
    commit = Path(lake, "runs", "_delta_log", f"{version:020d}.json")
    return sum(1 for line in commit.read_text().splitlines() if '"add"' in line[:8])


def test_long_lived_lake_sees_new_and_replaced_runs_without_reloading(dirs):
    zone = LocalLandingZone(dirs.landing)
    for i, day in enumerate(("2024-03-01", "2024-03-02", "2024-03-03")):
        B.backtest(dirs.landing, f"inc-{i}", metrics={"sharpe": float(i)},
                   created_at=f"{day}T00:00:00Z")
    ingest(dirs.lake, zone)
    lake = Lake(dirs.lake)
    assert len(ids(lake.runs())) == 3
    stats = lake.catalog.stats
    assert stats["runs_loads"] == 1
    read_at_load = stats["runs_files_read"]

    B.backtest(dirs.landing, "inc-new", metrics={"sharpe": 7.0}, created_at="2024-03-04T00:00:00Z")
    ingest(dirs.lake, zone)
    assert ids(lake.runs(where="metrics.sharpe > 5")) == ["inc-new"]
    version = lake.catalog.runs_version()
    assert stats["runs_loads"] == 1 and stats["runs_refreshes"] == 1
    assert stats["runs_files_read"] == read_at_load + added_files(dirs.lake, version)

    B.backtest(dirs.landing, "inc-1", metrics={"sharpe": 42.0}, params={"fresh": "yes"},
               created_at="2024-03-02T00:00:00Z")
    assert [r.status for r in ingest(dirs.lake, zone).results] == ["replaced"]
    read_before = stats["runs_files_read"]
    assert ids(lake.runs(where="metrics.sharpe > 40")) == ["inc-1"]
    replaced_in = lake.catalog.runs_version()
    assert stats["runs_files_read"] == read_before + added_files(dirs.lake, replaced_in)
    assert ids(lake.runs(where="params.fresh = 'yes'")) == ["inc-1"]
    assert ids(lake.runs(where="metrics.sharpe = 1")) == []  # the old content is gone
    assert sorted(ids(lake.runs())) == ["inc-0", "inc-1", "inc-2", "inc-new"]
    assert stats["runs_loads"] == 1 and stats["runs_refreshes"] == 2
    assert lake.catalog.runs_frame().get_column("run_id").sort().to_list() == \
        ["inc-0", "inc-1", "inc-2", "inc-new"]
    assert lake.compare("inc-1", "inc-0")["metrics"]["sharpe"]["a"] == 42.0
    assert lake.run("inc-1")["params"]["fresh"] == "yes"


def test_many_small_refreshes_stay_few_segments_and_equal_a_fresh_load(dirs):
    zone = LocalLandingZone(dirs.landing)
    B.backtest(dirs.landing, "seg-base", created_at="2024-05-01T00:00:00Z")
    ingest(dirs.lake, zone)
    lake = Lake(dirs.lake)
    lake.runs()
    for i in range(8):
        B.backtest(dirs.landing, f"seg-{i}", params={"i": i, f"only{i}": True},
                   metrics={"sharpe": float(i)}, created_at=f"2024-05-{2 + i % 3:02d}T00:00:00Z")
        if i % 3 == 2:  # and replace an earlier one now and then
            B.backtest(dirs.landing, f"seg-{i - 1}", params={"i": 100 + i},
                       created_at="2024-05-01T00:00:00Z")
        ingest(dirs.lake, zone)
        assert snapshot(lake) == snapshot(Lake(dirs.lake)), i
    assert lake.catalog.stats["runs_loads"] == 1
    assert len(lake.catalog.runs_index().segments) <= 4


def test_a_log_that_cannot_be_followed_loads_again(dirs):
    from deltalake import DeltaTable

    zone = LocalLandingZone(dirs.landing)
    B.backtest(dirs.landing, "log-0")
    ingest(dirs.lake, zone)
    lake = Lake(dirs.lake)
    assert ids(lake.runs()) == ["log-0"]
    start = lake.catalog.runs_version()
    for i in (1, 2, 3):
        B.backtest(dirs.landing, f"log-{i}", created_at=f"2024-06-0{i}T00:00:00Z")
        ingest(dirs.lake, zone)
    dt = DeltaTable(f"{dirs.lake}/runs")
    dt.create_checkpoint()
    Path(delta_log.commit_uri(dirs.lake, "runs", start + 2)).unlink()  # as log cleanup does
    assert delta_log.changes(dirs.lake, "runs", start, dt.version()) is None
    assert sorted(ids(lake.runs())) == ["log-0", "log-1", "log-2", "log-3"]
    assert lake.catalog.stats["runs_loads"] == 2


def test_a_new_column_in_the_runs_table_loads_again(dirs):
    zone = LocalLandingZone(dirs.landing)
    B.backtest(dirs.landing, "col-0")
    ingest(dirs.lake, zone)
    lake = Lake(dirs.lake)
    lake.runs()
    extra = pl.read_delta(f"{dirs.lake}/runs").head(0).with_columns(
        pl.lit(None, pl.String).alias("note")).to_arrow()
    delta.write(dirs.lake, "runs", extra, predicate="false", metadata={})
    B.backtest(dirs.landing, "col-1", created_at="2024-07-01T00:00:00Z")
    ingest(dirs.lake, zone)
    assert sorted(ids(lake.runs())) == ["col-0", "col-1"]
    assert "note" in lake.search()[0].columns
    assert lake.catalog.stats["runs_loads"] == 2


def test_partition_values_come_from_the_log(tmp_path):
    lake = str(tmp_path / "lake")
    day = date(2024, 8, 9)
    write_runs(lake, [run_bundle("pv-0", {"x": 1}, {}, datetime(2024, 8, 9, tzinfo=UTC))])
    frame = Lake(lake).catalog.runs_frame()
    assert frame.get_column("date").to_list() == [day]
