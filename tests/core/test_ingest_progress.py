"""``btlake ingest`` progress: the ingesting child's events reach the CLI through the
application layer and become a rich progress bar on a terminal's stderr; piped, the output is
the bundle lines and the summary only, on stdout, with nothing on stderr."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys

from btlake_pipelines import Lake
from btlake_pipelines.landing.local import LocalLandingZone
from tests.core import bundles as B

BTLAKE = [sys.executable, "-m", "btlake_pipelines.interfaces.cli"]
RUNS = [f"pg-{i}" for i in range(4)]
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def env_for(dirs) -> dict[str, str]:
    env = dict(os.environ, BTLAKE_LAKE=dirs.lake, BTLAKE_LANDING=dirs.landing,
               TERM="xterm-256color", COLUMNS="100")
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)
    return env


def ingest_on_a_terminal(dirs) -> tuple[int, str, str]:
    """``btlake ingest`` with stderr on a pseudo-terminal and stdout piped: (exit code, stdout,
    what the terminal received)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*BTLAKE, "ingest"], stdout=subprocess.PIPE, stderr=slave,
                            stdin=subprocess.DEVNULL, env=env_for(dirs))
    os.close(slave)
    seen = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
            raise AssertionError("btlake ingest did not finish")
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal's other end closed: the command ended
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.stdout is not None
    stdout = proc.stdout.read().decode()
    return proc.wait(timeout=120), stdout, seen.decode(errors="replace")


def test_a_terminal_shows_a_progress_bar_on_stderr_only(dirs):
    for run_id in RUNS:
        B.backtest(dirs.landing, run_id)
    code, stdout, terminal = ingest_on_a_terminal(dirs)
    assert code == 0, terminal
    text = _ANSI.sub("", terminal)
    assert "validate" in text and "archive" in text  # the child's phases, relayed
    assert f"{len(RUNS)}/{len(RUNS)}" in text  # rich's done/total column
    assert "━" in text  # the bar itself
    assert stdout.splitlines() == [f"{r}  ingested" for r in RUNS] + [
        stdout.splitlines()[-1]]
    assert stdout.splitlines()[-1].startswith(f"{len(RUNS)} bundle(s): {len(RUNS)} ingested")


def test_piped_output_is_unchanged_and_stderr_empty(dirs):
    for run_id in RUNS:
        B.backtest(dirs.landing, run_id)
    B.backtest(dirs.landing, "pg-bad", tables={"trades": B.trades(2).drop_columns(["qty"])})
    out = subprocess.run([*BTLAKE, "ingest"], capture_output=True, text=True,
                         env=env_for(dirs), timeout=120)
    assert out.returncode == 1
    assert out.stderr == ""
    lines = out.stdout.splitlines()
    assert lines[:-2] == [f"{r}  ingested" for r in RUNS]
    assert lines[-2].startswith("pg-bad  quarantined: missing_column [trades.qty]")
    assert lines[-1].startswith("5 bundle(s): 4 ingested, 0 unchanged, 0 replaced, "
                                "1 quarantined;")


def test_the_app_layer_relays_the_child_events_in_process(dirs):
    """``Lake.ingest(progress=...)`` gets the isolated child's events, in order per phase."""
    for run_id in RUNS:
        B.backtest(dirs.landing, run_id)
    events: list[tuple[str, int, int]] = []
    batch = Lake(dirs.lake).ingest(dirs.landing, progress=lambda *e: events.append(e))
    assert [r.status for r in batch.results] == ["ingested"] * len(RUNS)
    for phase in ("validate", "archive"):
        mine = [(d, t) for p, d, t in events if p == phase]
        assert mine == [(i, len(RUNS)) for i in range(1, len(RUNS) + 1)], events
    assert not LocalLandingZone(dirs.landing).complete_bundles()
