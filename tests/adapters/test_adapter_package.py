"""The adapters package without an engine run: it loads no engine until called, and the folder
it writes is one ``btlake publish`` and ``btlake ingest`` take as any other bundle."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

from tests.core.test_cli import btlake


def test_importing_the_adapters_loads_no_engine():
    code = ("import sys\n"
            "import btlake_pipelines.adapters as a\n"
            "import btlake_pipelines.adapters.backtesting, btlake_pipelines.adapters.vectorbt\n"
            "import btlake_pipelines.adapters.backtrader\n"
            "import btlake_pipelines.app.adapters\n"
            "print(sorted({'backtesting', 'vectorbt', 'backtrader', 'numba', 'pandas'}"
            " & set(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_btlake_publish_and_ingest_take_an_adapter_folder(tmp_path, dirs):
    from backtesting import Backtest
    from backtesting.test import GOOG
    from backtesting.test._test import SmaCross

    from btlake_pipelines.adapters import write_bundle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = Backtest(GOOG.iloc[:250], SmaCross).run(fast=4, slow=12)
    folder = write_bundle(stats, tmp_path / "out", run_id="cli-sma", strategy_id="sma_cross",
                          markets="XNAS")
    published = btlake("publish", str(folder), env_dirs=dirs)
    assert published.returncode == 0, published.stderr
    ingested = btlake("ingest", env_dirs=dirs)
    assert ingested.returncode == 0, ingested.stderr
    assert ingested.stdout.splitlines()[0].split()[:2] == ["cli-sma", "ingested"]
    runs = btlake("runs", "--where", "engine.name = 'backtesting.py' and params.fast = 4",
                  "--format", "json", env_dirs=dirs)
    assert runs.returncode == 0, runs.stderr
    found = json.loads(runs.stdout)
    assert [r["run_id"] for r in found["runs"]] == ["cli-sma"]
