"""Peak memory of a command and every process it starts.

``btlake ingest`` supervises a child that does the work (``ingest/isolated.py``), so the
memory that matters is the whole tree's. Two figures are taken, because neither is enough on
its own:

- the kernel's ``ru_maxrss`` of the command: the high-water mark of the largest single process
  of the tree (children included once reaped), exact, never sampled. It is read by a small
  launcher process, not by the bench itself: Linux starts a new program's ``maxrss`` at the
  high-water mark of the process that executed it, so a command started directly from a bench
  process holding 400 MB would report at least 400 MB however little it used;
- the sum of resident memory over the live tree, sampled from ``/proc`` every few tens of
  milliseconds: what the machine had to hold at once (shared library pages count once per
  process, as they would in ``top``).

The sampler also enforces a cap: on a shared machine a bundle that blows up must not push
other people's work into the OOM killer, so the tree is killed when it passes ``cap_bytes``
and the result says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Usage:
    """How one command ran: wall time, exit code and its memory high-water marks (bytes)."""

    seconds: float
    returncode: int
    max_rss_one: int
    peak_tree: int
    stopped: str = ""  # why the sampler killed the tree ("" when it ran to its end)
    stdout: str = ""
    stderr: str = ""

    @property
    def peak(self) -> int:
        """The larger of the two figures: a short spike the sampler missed still counts."""
        return max(self.max_rss_one, self.peak_tree)


#: The launcher: a bare interpreter (a few MB) that runs the command, times it and records its
#: ``wait4`` usage and exit status as JSON in the file named by its first argument.
LAUNCHER = """
import json, os, sys, time
t0 = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - t0
with open(sys.argv[1], "w") as f:
    json.dump({"seconds": seconds, "code": os.waitstatus_to_exitcode(status),
               "maxrss_kib": usage.ru_maxrss}, f)
"""


def run_measured(cmd: list[str], *, cap_bytes: int | None = None, timeout: float | None = None,
                 interval: float = 0.02, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None) -> Usage:
    """Run ``cmd`` to its end (or until it passes ``cap_bytes`` / ``timeout``) and measure it."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", suffix=".json") as report:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, report.name, *cmd],
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                cwd=cwd)
        state = {"peak": 0, "stopped": ""}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                pids = tree(proc.pid)
                total = sum(rss(p) for p in pids[1:])  # the launcher itself is not counted
                state["peak"] = max(state["peak"], total)
                why = ""
                if cap_bytes is not None and total > cap_bytes:
                    why = f"passed the {cap_bytes / 2**30:.1f} GiB cap"
                elif timeout is not None and time.perf_counter() - t0 > timeout:
                    why = f"ran past {timeout:.0f} s"
                if why:
                    state["stopped"] = why
                    kill_tree(proc.pid, pids)
                    return
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        proc.wait()
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        text = Path(report.name).read_text()
        doc = json.loads(text) if text else {}  # empty: the launcher was killed at the cap
        return Usage(doc.get("seconds", seconds), doc.get("code", proc.returncode),
                     doc.get("maxrss_kib", 0) * 1024, state["peak"], state["stopped"],
                     out.read(), err.read())


def tree(root: int) -> list[int]:
    """``root`` and its live descendants (from ``/proc/<pid>/task/*/children``)."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
            except OSError:
                continue
            todo.extend(int(c) for c in text.split())
    return out


def rss(pid: int) -> int:
    """Resident bytes of one process (0 once it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def kill_tree(root: int, pids: list[int] | None = None) -> None:
    """SIGKILL ``root`` and the descendants seen, deepest first (only processes this module
    started, by id)."""
    for pid in reversed(pids if pids is not None else tree(root)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
