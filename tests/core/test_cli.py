"""The ``btlake`` command as a user runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.core import bundles as B

BTLAKE = [sys.executable, "-m", "btlake_pipelines.interfaces.cli"]


def btlake(*args: str, env_dirs=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if env_dirs is not None:
        env.update(BTLAKE_LAKE=env_dirs.lake, BTLAKE_LANDING=env_dirs.landing)
    return subprocess.run([*BTLAKE, *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_ingest_prints_a_line_per_bundle_and_exits_1_on_quarantine(dirs):
    B.backtest(dirs.landing, "cli-good")
    B.backtest(dirs.landing, "cli-bad", tables={"trades": B.trades(2).drop_columns(["qty"])})
    out = btlake("ingest", env_dirs=dirs)
    assert out.returncode == 1, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("cli-bad  quarantined: missing_column [trades.qty]")
    assert lines[1] == "cli-good  ingested"
    assert lines[2].startswith("2 bundle(s): 1 ingested")
    assert "Traceback" not in out.stderr


def test_search_read_history_compare_flow(dirs, tmp_path):
    B.backtest(dirs.landing, "flow-a", metrics={"sharpe": 1.5})
    B.backtest(dirs.landing, "flow-b", metrics={"sharpe": 0.5}, params={"lookback": 40})
    assert btlake("ingest", env_dirs=dirs).returncode == 0

    found = btlake("runs", "--where", "metrics.sharpe > 1", "--format", "json", env_dirs=dirs)
    assert found.returncode == 0
    doc = json.loads(found.stdout)
    assert doc["total"] == 1 and doc["runs"][0]["run_id"] == "flow-a"
    assert doc["runs"][0]["params"]["lookback"] == 20

    out = tmp_path / "x.parquet"
    read = btlake("read", "trades", "--run-id", "flow-a", "--out", str(out), env_dirs=dirs)
    assert read.returncode == 0 and out.stat().st_size > 0
    import pyarrow.parquet as pq

    assert pq.read_table(out).num_rows == 4

    history = btlake("history", "trades", "--format", "json", env_dirs=dirs)
    versions = json.loads(history.stdout)["versions"]
    assert versions[0]["version"] == 0 and set(versions[0]["runs"]) == {"flow-a", "flow-b"}

    compare = btlake("compare", "flow-a", "flow-b", "--format", "json", env_dirs=dirs)
    doc = json.loads(compare.stdout)
    assert doc["params"]["lookback"]["differs"] is True

    # options are accepted before or after the command
    before = btlake("--lake", dirs.lake, "runs", "--format", "csv")
    after = btlake("runs", "--format", "csv", "--lake", dirs.lake)
    assert before.stdout == after.stdout and "flow-b" in before.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["read", "nosuch"], "unknown table 'nosuch'"),
    (["runs", "--where", "metrics.sharpe >"], "expected a value"),
    (["read", "trades", "--as-of", "yesterday-ish"], "as_of must be an ISO-8601"),
    (["compare", "nope-a", "nope-b"], "unknown run 'nope-a'"),
    (["runs", "--limit", "x"], "is not a valid integer"),
    (["frobnicate"], "No such command 'frobnicate'"),
])
def test_bad_input_is_one_line_on_stderr_and_nonzero(dirs, args, message):
    B.backtest(dirs.landing, "e-1")
    btlake("ingest", env_dirs=dirs)
    out = btlake(*args, env_dirs=dirs)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and message in out.stderr
    assert "Traceback" not in out.stderr


def test_publish_copies_manifest_last_and_refuses_non_bundles(dirs, tmp_path):
    src = B.backtest(tmp_path / "src", "pub-1")
    out = btlake("publish", str(src), env_dirs=dirs)
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(dirs.landing_path / "pub-1")) == sorted(os.listdir(src))
    again = btlake("publish", str(src), env_dirs=dirs)
    assert again.returncode == 2 and "already waiting" in again.stderr
    (tmp_path / "not-a-bundle").mkdir()
    assert btlake("publish", str(tmp_path / "not-a-bundle"), env_dirs=dirs).returncode == 2


def test_query_path_imports_no_dagster_pandas_or_pandera():
    code = ("import sys, btlake_pipelines; from btlake_pipelines import Lake; "
            "from btlake_pipelines.interfaces.cli import commands, main, render; "
            "from btlake_pipelines.query import search, read, where; "
            "from btlake_pipelines.versions import history, compare; "
            "print(' '.join(m for m in ('dagster','pandas','pandera') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == ""
