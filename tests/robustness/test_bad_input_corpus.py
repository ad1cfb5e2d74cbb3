"""A corpus of malformed and hostile bundles, ingested in one batch next to good ones.

Each bad bundle must land in ``_quarantine/`` with a ``reason.json`` naming a specific
machine-readable rule (the same reason is in ``ingest_log``), nothing of it may reach a table,
and the good bundles of the same batch must land whole. The CLI run of the same corpus prints
one line per bundle, no traceback, and exits 1.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

try:
    from . import robust_kit as K
except ImportError:
    import robust_kit as K

from btlake_pipelines import Lake
from btlake_pipelines.contract.run_ids import printable
from btlake_pipelines.ingest.batch import ingest
from btlake_pipelines.landing.local import LocalLandingZone


@dataclass(frozen=True)
class Case:
    id: str
    rule: str
    build: Callable[[Path, Path], None]  # (bundle folder, folder outside landing) -> None
    folder: str | None = None  # the folder name in landing (default: the id)
    table: str | None = None
    column: str | None = None
    cli: bool = True  # also part of the CLI run (False: needs an in-process landing zone)

    @property
    def name(self) -> str:
        return self.folder if self.folder is not None else self.id


TRADES = K.trades_table()
EQUITY = K.equity_table()


def files(trades: bytes | None = None, equity: bytes | None = None, *,
          trades_name: str = "trades.parquet") -> dict[str, bytes]:
    return {trades_name: trades if trades is not None else K.parquet_bytes(TRADES),
            "equity.parquet": equity if equity is not None else K.parquet_bytes(EQUITY)}


def bundle(man: Callable[[str], dict | bytes | str] | None = None,
           content: Callable[[], dict[str, bytes]] | None = None, *,
           trades_name: str = "trades.parquet"):
    """A builder writing ``content()`` and the manifest ``man(folder name)``."""

    def build(folder: Path, outside: Path) -> None:
        name = folder.name
        doc = man(name) if man else K.manifest(
            name, tables={"trades": trades_name, "equity": "equity.parquet"})
        K.write_raw(folder, doc, content() if content else files(trades_name=trades_name))

    return build


def with_trades(**cols) -> Callable[[Path, Path], None]:
    table = K.trades_table(**cols)
    return bundle(content=lambda: files(K.parquet_bytes(table)))


def with_trades_csv(text: bytes | str) -> Callable[[Path, Path], None]:
    data = text.encode() if isinstance(text, str) else text
    return bundle(content=lambda: files(data, trades_name="trades.csv"), trades_name="trades.csv")


def manifest_text(text: bytes | str) -> Callable[[Path, Path], None]:
    return bundle(man=lambda name: text)


def manifest_with(**over) -> Callable[[Path, Path], None]:
    return bundle(man=lambda name: K.manifest(**{"run_id": name, **over}))


def ticks_bundle(table: pa.Table, **over) -> Callable[[Path, Path], None]:
    def build(folder: Path, outside: Path) -> None:
        K.write_raw(folder, K.market_manifest(folder.name, **over),
                    {"ticks.parquet": K.parquet_bytes(table)})

    return build


def l2_bundle(**cols) -> Callable[[Path, Path], None]:
    data = {"ts": K.ts_array(3), "symbol": ["AAPL"] * 3, "side": ["bid", "ask", "bid"],
            "level": [0, 0, 1], "price": [10.0, 10.1, 9.9], "size": [1.0, 2.0, 3.0]}
    data.update(cols)
    table = pa.table(data)

    def build(folder: Path, outside: Path) -> None:
        K.write_raw(folder, K.market_manifest(folder.name, tables={"l2": "l2.parquet"}),
                    {"l2.parquet": K.parquet_bytes(table)})

    return build


def truncated_parquet(folder: Path, outside: Path) -> None:
    data = K.parquet_bytes(TRADES)
    bundle(content=lambda: files(data[: len(data) // 2]))(folder, outside)


def symlinked_file(folder: Path, outside: Path) -> None:
    secret = outside / "secret.parquet"
    secret.write_bytes(K.parquet_bytes(TRADES))
    bundle(content=lambda: {"equity.parquet": K.parquet_bytes(EQUITY)})(folder, outside)
    os.symlink(secret, folder / "trades.parquet")


def symlinked_folder(folder: Path, outside: Path) -> None:
    # the landing entry is a link to a complete, valid bundle outside landing
    target = K.write_good(outside / "linked", folder.name)
    os.symlink(target, folder, target_is_directory=True)


def symlinked_manifest(folder: Path, outside: Path) -> None:
    real = outside / "manifest-elsewhere.json"
    real.write_text(json.dumps(K.manifest(folder.name)))
    folder.mkdir(parents=True)
    for name, data in files().items():
        (folder / name).write_bytes(data)
    os.symlink(real, folder / "manifest.json")


def folder_as_table_file(folder: Path, outside: Path) -> None:
    bundle(content=lambda: {"equity.parquet": K.parquet_bytes(EQUITY)})(folder, outside)
    (folder / "trades.parquet").mkdir()


def growing(folder: Path, outside: Path) -> None:
    bundle()(folder, outside)  # GrowingZone appends to trades.parquet after listing it


CASES: list[Case] = [
    # --- table files that are not what they claim -------------------------------------------
    Case("parquet-truncated", "file_format", truncated_parquet, table="trades"),
    Case("parquet-is-text", "file_format",
         bundle(content=lambda: files(b"ts,symbol\n2024-01-01,AAPL\n")), table="trades"),
    Case("parquet-magic-garbage", "file_format",
         bundle(content=lambda: files(b"PAR1" + os.urandom(64) + b"PAR1")), table="trades"),
    Case("parquet-empty-file", "file_format", bundle(content=lambda: files(b"")),
         table="trades"),
    Case("csv-semicolons", "missing_column",
         with_trades_csv("ts;symbol;side;qty;price\n2024-03-04T09:30:00Z;AAPL;buy;1;10\n"),
         table="trades"),
    Case("csv-latin1", "csv_encoding",
         with_trades_csv("ts,symbol,side,qty,price\n2024-03-04T09:30:00Z,Soci\xe9t\xe9,buy,1,10\n"
                         .encode("latin-1")), table="trades"),
    Case("csv-ragged-row", "csv_format",
         with_trades_csv("ts,symbol,side,qty,price\n2024-03-04T09:30:00Z,AAPL,buy,1,10\n"
                         "2024-03-04T09:31:00Z,AAPL,sell,1,10,EXTRA\n"), table="trades"),
    Case("csv-empty-file", "csv_format", with_trades_csv(""), table="trades"),
    Case("csv-duplicate-header", "column_name",
         with_trades_csv("ts,symbol,side,qty,price,qty\n2024-03-04T09:30:00Z,AAPL,buy,1,10,2\n"),
         table="trades"),
    # --- types and values --------------------------------------------------------------------
    Case("csv-uncastable-qty", "type",
         with_trades_csv("ts,symbol,side,qty,price\n2024-03-04T09:30:00Z,AAPL,buy,ten,10\n"),
         table="trades", column="qty"),
    Case("price-is-bool", "type", with_trades(price=pa.array([True, False, True, True])),
         table="trades", column="price"),
    Case("price-is-text", "type", with_trades(price=pa.array(["1", "2", "x", "4"])),
         table="trades", column="price"),
    Case("ts-is-integer", "type", with_trades(ts=pa.array([1, 2, 3, 4])), table="trades",
         column="ts"),
    Case("price-nan", "not_null", with_trades(price=pa.array([1.0, float("nan"), 2.0, 3.0])),
         table="trades", column="price"),
    Case("price-inf", "finite", with_trades(price=pa.array([1.0, float("inf"), 2.0, 3.0])),
         table="trades", column="price"),
    Case("price-negative", "positive", with_trades(price=pa.array([1.0, -2.0, 2.0, 3.0])),
         table="trades", column="price"),
    Case("qty-zero", "positive", with_trades(qty=pa.array([1.0, 0.0, 2.0, 3.0])),
         table="trades", column="qty"),
    Case("side-uppercase", "allowed_values",
         with_trades(side=pa.array(["buy", "SELL", "buy", "sell"])), table="trades",
         column="side"),
    Case("symbol-null", "not_null", with_trades(symbol=pa.array(["A", None, "B", "C"])),
         table="trades", column="symbol"),
    Case("required-column-missing", "missing_column",
         bundle(content=lambda: files(K.parquet_bytes(TRADES.drop_columns(["price"])))),
         table="trades", column="price"),
    Case("equity-minus-inf", "finite",
         bundle(content=lambda: files(equity=K.parquet_bytes(
             K.equity_table(equity=pa.array([1.0, 2.0, float("-inf"), 3.0, 4.0]))))),
         table="equity", column="equity"),
    Case("tick-size-negative", "non_negative",
         ticks_bundle(K.ticks_table(size=pa.array([1.0, 2.0, -0.5, 1.0, 1.0, 1.0]))),
         table="ticks", column="size"),
    Case("tick-price-nan", "not_null",
         ticks_bundle(K.ticks_table(price=pa.array([1.0, float("nan"), 1, 1, 1, 1.0]))),
         table="ticks", column="price"),
    Case("tick-symbol-nul", "nul_character",
         ticks_bundle(K.ticks_table(symbol="AA\x00PL")), table="ticks", column="symbol"),
    Case("l2-side-wrong", "allowed_values", l2_bundle(side=["bid", "buy", "ask"]), table="l2",
         column="side"),
    Case("l2-level-negative", "non_negative", l2_bundle(level=[0, -1, 1]), table="l2",
         column="level"),
    Case("l2-level-fractional", "type", l2_bundle(level=[0.0, 1.5, 1.0]), table="l2",
         column="level"),
    Case("ts-unparseable", "type",
         with_trades_csv("ts,symbol,side,qty,price\nyesterday noon,AAPL,buy,1,10\n"),
         table="trades", column="ts"),
    Case("ts-mixed-formats", "type",
         with_trades_csv("ts,symbol,side,qty,price\n2024-03-04T09:30:00Z,AAPL,buy,1,10\n"
                         "03/04/2024 09:31,AAPL,sell,1,10\n"), table="trades", column="ts"),
    Case("ts-beyond-year-2262", "type",
         with_trades(ts=pa.array([253402300799000000] * 4, pa.timestamp("us", "UTC"))),
         table="trades", column="ts"),
    Case("payload-not-json", "json",
         bundle(man=lambda n: K.manifest(n, tables={"trades": "trades.parquet",
                                                    "equity": "equity.parquet",
                                                    "events": "events.parquet"}),
                content=lambda: {**files(), "events.parquet": K.parquet_bytes(pa.table({
                    "ts": K.ts_array(2), "event_type": ["signal", "order"],
                    "payload": ['{"a": 1}', "{not json"]}))}),
         table="events", column="payload"),
    Case("market-missing", "market_missing", manifest_with(markets=["XNAS", "XNYS"]),
         table="equity", column="market"),  # tables are read in name order
    Case("market-value-hostile", "market_name",
         with_trades(market=pa.array(["XNAS", "X'; DROP TABLE runs; --", "XNAS", "XNAS"])),
         table="trades", column="market"),
    Case("run-id-column-differs", "run_identity",
         with_trades(run_id=pa.array(["someone-else"] * 4)), table="trades", column="run_id"),
    Case("column-name-control-char", "column_name", with_trades(**{"note\x07": ["x"] * 4}),
         table="trades"),
    # --- manifests ---------------------------------------------------------------------------
    Case("manifest-not-json", "manifest_json", manifest_text("{this is not json")),
    Case("manifest-not-utf8", "manifest_encoding", manifest_text(b'{"run_id": "\xff\xfe"}')),
    Case("manifest-is-list", "manifest_json", manifest_text("[1, 2, 3]")),
    Case("manifest-missing-created-at", "required_field", manifest_with(created_at=None),
         column="created_at"),
    Case("manifest-missing-strategy", "required_field", manifest_with(strategy_id=None),
         column="strategy_id"),
    Case("manifest-missing-tables", "required_field", manifest_with(tables=None),
         column="tables"),
    Case("manifest-format-v2", "format", manifest_with(format="btlake.bundle/2"),
         column="format"),
    Case("manifest-created-at-garbage", "created_at", manifest_with(created_at="last tuesday"),
         column="created_at"),
    Case("manifest-folder-mismatch", "run_id_folder",
         bundle(man=lambda n: K.manifest("another-run")), column="run_id"),
    Case("manifest-names-missing-file", "missing_file",
         manifest_with(tables={"trades": "trades.parquet", "equity": "equity.parquet",
                               "events": "events.parquet"}), table="events"),
    Case("manifest-unknown-table", "unknown_table",
         manifest_with(tables={"trades": "trades.parquet", "positions": "equity.parquet"}),
         column="tables"),
    Case("manifest-trades-in-market-data", "table_kind",
         bundle(man=lambda n: K.market_manifest(n, tables={"trades": "trades.parquet"})),
         column="tables"),
    Case("manifest-params-nested", "params", manifest_with(params={"grid": {"a": 1}}),
         column="params"),
    Case("manifest-metric-text", "metrics", manifest_with(metrics={"sharpe": "high"}),
         column="metrics"),
    Case("manifest-symlink", "manifest_file", symlinked_manifest, table="manifest"),
    Case("manifest-kind-unknown", "kind", manifest_with(kind="live_trading"), column="kind"),
    Case("manifest-tables-empty", "tables", manifest_with(tables={}), column="tables"),
    Case("manifest-markets-not-list", "field_type", manifest_with(markets="XNAS"),
         column="markets"),
    Case("manifest-param-name-control", "field_name", manifest_with(params={"a\x01b": 1}),
         column="params"),

    # --- names: run ids and file names -------------------------------------------------------
    Case("run-id-slash", "run_id", manifest_with(run_id="a/b"), column="run_id"),
    Case("run-id-dotdot", "run_id", manifest_with(run_id=".."), column="run_id"),
    Case("run-id-10000-chars", "run_id", manifest_with(run_id="r" * 10_000), column="run_id"),
    Case("run-id-nul", "run_id", manifest_with(run_id="a\x00b"), column="run_id"),
    Case("folder-quote", "run_id", bundle(), folder="it's-a-run"),
    Case("folder-unicode", "run_id", bundle(), folder="rün-ünïcødé"),
    Case("folder-control-chars", "run_id", bundle(), folder="evil\x1b[31m\nrun"),
    Case("folder-backslash", "run_id", bundle(), folder="a\\b"),
    Case("folder-leading-dots", "run_id", bundle(), folder="..sneaky"),
    Case("folder-200-chars", "run_id", bundle(), folder="x" * 200),
    Case("file-name-slash", "table_file_name",
         manifest_with(tables={"trades": "../outside/trades.parquet"}), column="tables"),
    Case("file-name-dotdot", "table_file_name", manifest_with(tables={"trades": "..parquet"}),
         column="tables"),
    Case("file-name-wrong-extension", "table_file_name",
         manifest_with(tables={"trades": "trades.txt"}), column="tables"),
    Case("file-name-twice", "table_file_name",
         manifest_with(tables={"trades": "trades.parquet", "equity": "trades.parquet"}),
         column="tables"),
    Case("file-symlink-outside", "not_a_regular_file", symlinked_file, table="trades"),
    Case("file-is-directory", "not_a_regular_file", folder_as_table_file, table="trades"),
    Case("folder-symlink-outside", "symlink", symlinked_folder),
    Case("file-still-growing", "file_changing", growing, table="trades", cli=False),
]


def good_bundles(landing: Path) -> dict[str, Callable[[Lake], None]]:
    """Valid bundles for the same batch, each with a check of what must be stored."""
    K.write_good(landing, "good-plain")
    dup = K.trades_table(4, ts=pa.array([K.T0] * 4, pa.timestamp("us", "UTC")),
                         side=pa.array(["buy"] * 4), qty=pa.array([5.0] * 4),
                         price=pa.array([10.0] * 4))
    K.write_good(landing, "good-identical-rows", trades=dup)
    K.write_good(landing, "good-empty-tables", trades=K.trades_table(0),
                 equity=K.equity_table(0))
    K.write_good(landing, "good-empty-csv", trades=K.trades_table(0), fmt="csv")
    K.write_synthetic(landing, 0)
    # a quoted line break inside a CSV value is valid CSV (RFC 4180)
    K.write_good(landing, "good-csv-line-break", fmt="csv",
                 trades=K.trades_table(2, symbol=pa.array(["AA\nPL", "x\r\ny"])))
    K.write_raw(landing / "good-ticks", K.market_manifest("good-ticks"),
                {"ticks.parquet": K.parquet_bytes(K.ticks_table())})

    def rows(run_id: str, table: str, n: int) -> Callable[[Lake], None]:
        def check(lake: Lake) -> None:
            got = lake.read(table, run_id=run_id)
            assert got.num_rows == n, (run_id, table, got.num_rows)

        return check

    def identical(lake: Lake) -> None:
        got = lake.read("trades", run_id="good-identical-rows")
        assert got.num_rows == 4
        assert len({tuple(r.values()) for r in got.select(
            ["ts", "symbol", "side", "qty", "price"]).to_pylist()}) == 1

    def ticks(lake: Lake) -> None:
        assert lake.read("ticks", market="XNAS").num_rows == 6

    def line_break(lake: Lake) -> None:
        got = lake.read("trades", run_id="good-csv-line-break").column("symbol").to_pylist()
        assert sorted(got) == ["AA\nPL", "x\r\ny"]

    return {"good-plain": rows("good-plain", "trades", 4),
            "good-csv-line-break": line_break,
            "good-identical-rows": identical,
            "good-empty-tables": rows("good-empty-tables", "equity", 0),
            "good-empty-csv": rows("good-empty-csv", "trades", 0),
            "good-ticks": ticks}


class GrowingZone(LocalLandingZone):
    """A landing zone where an engine is still appending to one file after its manifest
    appeared: the listing sees one size, the read gets more."""

    def read_bytes(self, name: str, file_name: str) -> bytes:
        if name == "file-still-growing" and file_name == "trades.parquet":
            with open(self.root / name / file_name, "ab") as f:
                f.write(b"more rows arriving")
        return super().read_bytes(name, file_name)


def build_corpus(landing: Path, outside: Path, *, cli_only: bool = False) -> list[Case]:
    landing.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    cases = [c for c in CASES if c.cli or not cli_only]
    for case in cases:
        case.build(landing / case.name, outside)
    return cases


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    landing, lake, outside = root / "landing", root / "lake", root / "outside"
    cases = build_corpus(landing, outside)
    checks = good_bundles(landing)
    outside_before = sorted(p.relative_to(outside).as_posix() for p in outside.rglob("*"))
    batch = ingest(str(lake), GrowingZone(str(landing)))
    return {"landing": landing, "lake": lake, "outside": outside, "cases": cases,
            "checks": checks, "batch": batch, "outside_before": outside_before}


def test_corpus_is_large_and_distinct():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({c.name for c in CASES}) == len(CASES)
    assert len({c.rule for c in CASES}) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_bundle_is_quarantined_with_its_rule(corpus, case: Case):
    lake: Path = corpus["lake"]
    results = {r.bundle: r for r in corpus["batch"].results}
    assert case.name in results, f"{case.id} was not handled at all"
    result = results[case.name]
    assert result.status == "quarantined", (case.id, result.status)
    assert result.reason["rule"] == case.rule, (case.id, result.error)

    reason = K.reasons(lake).get(case.name)
    assert reason is not None, f"no reason.json for {case.id}"
    assert reason["rule"] == case.rule
    assert reason["bundle"] == case.name  # the folder name as received, whatever it is
    assert reason["error"] and "\n" not in reason["error"]
    if case.table:
        assert reason["table"] == case.table, reason
    if case.column:
        assert reason["column"] == case.column, reason
    # the quarantine folder is a real folder under _quarantine (never a followed link) and
    # its name is safe even when the received name is not
    folder = lake / "_quarantine" / reason["_folder"]
    assert folder.is_dir() and not folder.is_symlink()
    assert folder.resolve().parent == (lake / "_quarantine").resolve()
    assert reason["_folder"].isascii() and reason["_folder"].isprintable()

    logged = [r for r in K.ingest_log(lake) if r["bundle"] == case.name]
    assert [r["status"] for r in logged] == ["quarantined"]
    assert logged[0]["reason"]["rule"] == case.rule
    assert not (corpus["landing"] / case.name).exists()
    assert not (corpus["landing"] / case.name).is_symlink()


def test_nothing_of_a_refused_bundle_is_stored(corpus):
    lake = Lake(str(corpus["lake"]))
    names = {c.name for c in corpus["cases"]} | {"another-run"}
    assert not names & {r["run_id"] for r in lake.runs().to_pylist()}
    for table in ("trades", "equity", "events"):
        raw = {r["run_id"] for r in K.raw_rows(corpus["lake"], table)}
        assert not names & raw, table
    raw_ticks = K.raw_rows(corpus["lake"], "ticks")
    assert len(raw_ticks) == 6 and {r["size"] for r in raw_ticks} == {1.0, 2, 3, 4, 5, 6}


def test_good_bundles_of_the_same_batch_land(corpus):
    results = {r.bundle: r for r in corpus["batch"].results}
    lake = Lake(str(corpus["lake"]))
    for name, check in corpus["checks"].items():
        assert results[name].status == "ingested", (name, results[name].error)
        check(lake)
    K.assert_runs_whole(corpus["lake"])
    assert not [p for p in corpus["landing"].iterdir()]  # landing holds nothing handled


def test_nothing_outside_landing_was_touched(corpus):
    outside: Path = corpus["outside"]
    after = sorted(p.relative_to(outside).as_posix() for p in outside.rglob("*"))
    assert after == corpus["outside_before"]
    assert not list(outside.rglob("reason.json"))


def test_cli_prints_one_line_per_refused_bundle(tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    cases = build_corpus(landing, tmp_path / "outside", cli_only=True)
    K.write_good(landing, "good-plain")
    proc = K.run_cli("--lake", str(lake), "--landing", str(landing), "ingest")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.strip() == ""
    lines = proc.stdout.splitlines()
    assert len(lines) == len(cases) + 2  # one per bundle and the summary
    assert all(line.isprintable() for line in lines)
    by_name = {}
    for case in cases:
        shown = printable(case.name)
        match = [ln for ln in lines if ln.startswith(shown + "  ")]
        assert len(match) == 1, (case.id, shown)
        by_name[case.name] = match[0]
        assert f"quarantined: {case.rule}" in match[0], (case.id, match[0])
    assert [ln for ln in lines if ln.startswith("good-plain  ")] == ["good-plain  ingested"]
    assert lines[-1].startswith(f"{len(cases) + 1} bundle(s): 1 ingested")
    assert f"{len(cases)} quarantined" in lines[-1]


def test_refusal_never_depends_on_batch_neighbours(tmp_path):
    """The same bad bundle alone in a batch gets the same rule as in the corpus batch."""
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    for case in CASES[:6] + CASES[12:16]:
        case.build(landing / case.name, tmp_path / "outside")
        batch = ingest(str(lake), GrowingZone(str(landing)), [case.name])
        assert batch.results[0].reason["rule"] == case.rule
        shutil.rmtree(lake / "_quarantine")
