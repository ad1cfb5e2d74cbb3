"""The peers' environment (``bench/.peers-venv``) and the worker process that runs them.

ArcticDB and MLflow live in their own venv so they never touch btlake's pinned stack. Each is
installed separately: one that cannot be installed is reported in the results and its columns
are left empty, the rest of the bench goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".peers-venv"
PYTHON = VENV / "bin" / "python"
#: What the peers venv holds, pinned to the versions the results were produced with.
PACKAGES = {
    "arcticdb": "arcticdb==6.28.2",
    "mlflow": "mlflow==3.17.2",
    "matplotlib": "matplotlib==3.11.2",
    "pyarrow": "pyarrow",
    "py-spy": "py-spy==0.4.3",
}


def ensure(install: bool, log) -> dict[str, str]:
    """Make sure the peers venv exists with every package that can be installed; returns
    package -> problem for the ones that are missing (empty when all are there)."""
    problems: dict[str, str] = {}
    if not PYTHON.exists():
        if not install:
            return {name: "peers venv not installed (run the full bench once)"
                    for name in PACKAGES}
        log(f"creating {VENV.relative_to(BENCH.parent)}")
        proc = subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            why = " ".join((proc.stderr or proc.stdout).split())[-300:]
            return {name: f"could not create the peers venv: {why}" for name in PACKAGES}
    missing = _missing()
    if missing and install:
        for name in missing:
            log(f"pip install {PACKAGES[name]} into the peers venv")
            t0 = time.perf_counter()
            proc = subprocess.run(
                [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 PACKAGES[name]], capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                tail = " ".join((proc.stderr or proc.stdout).split())[-300:]
                problems[name] = f"pip install failed: {tail}"
                log(f"  failed after {time.perf_counter() - t0:.0f}s: {tail}")
    for name in _missing():
        problems.setdefault(name, "not installed")
    return problems


def _missing() -> list[str]:
    """Packages not installed in the peers venv (found by name, without importing them)."""
    modules = [name for name in PACKAGES if name != "py-spy"]
    code = ("import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] "
            "if importlib.util.find_spec(m) is None))")
    proc = subprocess.run([str(PYTHON), "-c", code, *modules], capture_output=True, text=True)
    missing = proc.stdout.split() if proc.returncode == 0 else list(modules)
    if not (VENV / "bin" / "py-spy").exists():
        missing.append("py-spy")
    return missing


class PeerError(RuntimeError):
    pass


class Worker:
    """A ``peer_worker.py`` process in the peers venv; ``call`` sends one request."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.setdefault("MLFLOW_TRACKING_URI", "sqlite:///" + str(BENCH / "work" / "unused.db"))
        env["PYTHONUNBUFFERED"] = "1"
        (BENCH / "work").mkdir(exist_ok=True)
        with open(BENCH / "work" / "peer_worker.log", "ab") as log:
            self.proc = subprocess.Popen(
                [str(PYTHON), "-u", str(BENCH / "peer_worker.py")], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=str(BENCH.parent))

    def call(self, cmd: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"cmd": cmd, "args": args}, default=str) + "\n")
        self.proc.stdin.flush()
        if timeout is not None:
            import select

            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not ready:
                self.kill()
                raise TimeoutError(f"{cmd} did not finish in {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            raise PeerError(f"peer worker exited during {cmd} (see bench/work/peer_worker.log)")
        reply = json.loads(line)
        if not reply["ok"]:
            raise PeerError(f"{cmd}: {reply['error']}")
        return reply["result"]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
