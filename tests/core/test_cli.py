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
    (["read"], "Missing argument 'TABLE'"),
    (["demo", "--runs", "-1"], "--runs must be >= 0"),  # a core error's param, worded here
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


def test_help_and_a_missing_command():
    assert "--where EXPR" in btlake("runs", "--help").stdout
    bare = btlake()
    assert bare.returncode == 2 and "Commands:" in bare.stdout and bare.stderr == ""


def _patched(body: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The CLI in a process where ``Lake.find_runs`` runs ``body`` (a lambda's expression)."""
    code = ("import os, sys; from btlake_pipelines.app.lake import Lake; "
            "from btlake_pipelines import settings; "
            f"Lake.find_runs = lambda self, **kw: {body}; "
            "from btlake_pipelines.interfaces.cli.main import main; main(sys.argv[1:])")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_lake_option_builds_settings_without_writing_the_environment(tmp_path):
    env = {"BTLAKE_LAKE": str(tmp_path / "from-env")}
    shown = ("print(self.uri, settings.current().lake, os.environ['BTLAKE_LAKE']) "
             "or sys.exit(0)")
    out = _patched(shown, "runs", "--lake", str(tmp_path / "given"), **env)
    assert out.stdout.split() == [str(tmp_path / "given")] * 2 + [str(tmp_path / "from-env")]


def test_unexpected_errors_exit_3_with_a_traceback_only_in_debug():
    plain = _patched("1 / 0", "runs", BTLAKE_DEBUG="")
    assert plain.returncode == 3
    assert plain.stderr == "btlake: error: unexpected ZeroDivisionError: division by zero\n"
    debug = _patched("1 / 0", "runs", BTLAKE_DEBUG="1")
    assert debug.returncode == 3 and "Traceback" in debug.stderr


def test_interrupted_exits_130():
    out = _patched("(_ for _ in ()).throw(KeyboardInterrupt)", "runs")
    assert out.returncode == 130 and out.stderr == "btlake: error: interrupted\n"


def test_piped_tables_keep_their_width_and_out_files_their_folder(dirs, tmp_path):
    long_id = "a-run-id-long-enough-to-push-the-table-past-eighty-columns-" + "x" * 40
    B.backtest(dirs.landing, long_id, params={"lookback": 20, "note": "[bold]not markup"})
    assert btlake("ingest", env_dirs=dirs).returncode == 0
    lines = btlake("runs", env_dirs=dirs).stdout.splitlines()
    assert lines[2].startswith(long_id + " ") and all(ln == ln.rstrip() for ln in lines)
    out = tmp_path / "new" / "runs.csv"
    assert btlake("runs", "--out", str(out), env_dirs=dirs).returncode == 0
    assert long_id in out.read_text()


def test_help_and_usage_errors_load_no_data_stack():
    code = ("import sys; import btlake_pipelines.interfaces.cli.main; print(' '.join(m for m in "
            "('polars', 'pyarrow', 'deltalake', 'rich', 'dagster') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == ""
