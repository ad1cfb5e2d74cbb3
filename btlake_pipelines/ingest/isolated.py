"""Ingestion in a child process, so a bundle that kills its process cannot kill the caller or
be retried forever.

A native crash (a stack overflow in deltalake, an abort in Arrow, the OOM killer) ends a
process with a signal: no exception, no traceback, nothing a ``try`` can catch. The CLI, the
HTTP server and the Dagster ingestion run therefore ingest through :func:`ingest_isolated`,
which runs :func:`ingest.batch.ingest` in a child process and watches how it ends:

- the child finishes: its :class:`BatchResult` comes back as JSON;
- the child dies by a signal: every bundle of its batch still in landing has crashed once. Each
  is retried alone in a fresh child (its batch mates land normally); a bundle whose own child
  dies too has crashed twice and is quarantined with the rule ``ingest_crashed``, naming the
  table whose write was under way (:mod:`ingest.breadcrumb`).

So a poison bundle is retried at most once, whoever started the ingest. Nothing a crashed child
left behind needs undoing: the write path is crash-safe by itself (see ``ingest/batch.py``).
The child dies with its supervisor (``PR_SET_PDEATHSIG``), so killing ``btlake ingest`` kills
the whole ingest, as it did when it ran in one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from btlake_pipelines.errors import BtlakeError, BundleRefused
from btlake_pipelines.ingest import breadcrumb
from btlake_pipelines.ingest.batch import BatchResult, quarantine_refused
from btlake_pipelines.landing.zone import LandingZone
from btlake_pipelines.metadata.ingest_log import BundleResult
from btlake_pipelines.settings import current, environment_for_child

Progress = Callable[[str, int, int], None]
#: Crashes of one bundle after which it is quarantined instead of tried again.
MAX_CRASHES = 2
RULE = "ingest_crashed"


class IngestFailed(RuntimeError):
    """The ingest failed for a reason outside any bundle (the store, the machine)."""


def ingest_isolated(lake: str, zone: LandingZone, names: list[str] | None = None, *,
                    progress: Progress | None = None) -> BatchResult:
    """Ingest ``names`` (default: every complete bundle) in child processes, quarantining a
    bundle whose ingestion kills its process twice. ``progress``: called here, in the
    caller's process, with each ``(phase, done, total)`` event of the children (they send
    them as JSON lines through a pipe), so the caller decides how progress is shown."""
    listed = names is None
    names = zone.complete_bundles() if names is None else list(names)
    merged = BatchResult(batch_id="")
    crashes: dict[str, int] = {}
    queue: list[list[str]] = [names] if names else []
    while queue:
        # the child keeps only bundles still landed; a retry's bundle was looked up at its crash
        batch = queue.pop(0)
        done, crash = _run_child(lake, zone, batch, progress, listed)
        if done is not None:
            _merge(merged, done)
            continue
        signame, table = crash
        for name in batch:
            if not zone.has_manifest(name):
                continue  # handled before the crash (archived or quarantined)
            crashes[name] = crashes.get(name, 0) + 1
            if crashes[name] < MAX_CRASHES:
                queue.append([name])
                continue
            where = f" while writing table '{table}'" if table else ""
            refusal = BundleRefused(
                name, RULE, f"ingesting this bundle killed the ingesting process "
                f"{crashes[name]} times ({signame}{where}); it is quarantined so that it is "
                "not retried again: republish it once the cause is fixed", table=table)
            _merge(merged, quarantine_refused(lake, zone, refusal))
    return merged


def _run_child(lake: str, zone: LandingZone, names: list[str], progress: Progress | None,
               listed: bool = False) -> tuple[BatchResult | None, tuple[str, str | None]]:
    """(the child's result, None) or (None, (signal name, table being written))."""
    with tempfile.TemporaryDirectory(prefix="btlake-ingest-") as tmp:
        job = Path(tmp) / "job.json"
        out = Path(tmp) / "result.json"
        crumb = Path(tmp) / "breadcrumb.json"
        read_end, write_end = os.pipe() if progress else (None, None)
        job.write_text(json.dumps({"lake": lake, "landing": zone.uri, "names": names,
                                   "progress_fd": write_end, "listed": listed,
                                   "out": str(out)}))
        env = environment_for_child(current().with_(supervised_by=os.getpid(),
                                                    breadcrumb=str(crumb)))
        proc = subprocess.Popen([sys.executable, "-m", "btlake_pipelines.ingest.isolated",
                                 str(job)], env=env, stdin=subprocess.DEVNULL,
                                pass_fds=() if write_end is None else (write_end,))
        if read_end is not None and write_end is not None and progress is not None:
            os.close(write_end)  # the child holds the only write end: EOF when it ends
            _relay(read_end, progress)
        proc.wait()
        if proc.returncode == 0 and out.exists():
            return _result_from_doc(json.loads(out.read_text())), ("", None)
        table = breadcrumb.read(str(crumb)).get("table")
        if proc.returncode < 0:
            return None, (signal.Signals(-proc.returncode).name, table)
        return None, (f"exit status {proc.returncode}", table)


def _relay(read_end: int, progress: Progress) -> None:
    """Hand each progress event the child writes (one JSON line each) to ``progress``, until
    the child ends; a line that is not an event is skipped."""
    with os.fdopen(read_end, "r", encoding="utf-8", errors="replace") as events:
        for line in events:  # read to the end even if showing fails: the child never blocks
            try:
                event = json.loads(line)
                phase, done, total = str(event["phase"]), int(event["done"]), int(event["total"])
            except (ValueError, KeyError, TypeError):
                continue
            with contextlib.suppress(Exception):  # progress is shown, never worth an ingest
                progress(phase, done, total)


def _merge(into: BatchResult, part: BatchResult) -> None:
    into.batch_id = into.batch_id or part.batch_id
    into.results += part.results
    for table, versions in part.commits.items():
        into.commits.setdefault(table, []).extend(versions)


def _result_to_doc(batch: BatchResult) -> dict:
    return {"batch_id": batch.batch_id, "commits": batch.commits,
            "results": [dataclasses.asdict(r) for r in batch.results]}


def _result_from_doc(doc: dict) -> BatchResult:
    if "error" in doc:
        err = doc["error"]
        if err.get("user"):
            raise BtlakeError(err["message"])
        raise IngestFailed(f"{err['type']}: {err['message']}")
    return BatchResult(batch_id=doc["batch_id"],
                       results=[BundleResult(**r) for r in doc["results"]],
                       commits={t: list(v) for t, v in doc["commits"].items()})


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its supervisor dies (no-op elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    supervisor = current().supervised_by
    if supervisor is not None and os.getppid() != supervisor:
        os._exit(1)  # the supervisor died before prctl took effect


def _child(job_path: str) -> int:
    from btlake_pipelines.ingest.batch import ingest
    from btlake_pipelines.landing import open_landing

    job = json.loads(Path(job_path).read_text())
    fd = job.get("progress_fd")
    events = os.fdopen(fd, "w", buffering=1, encoding="utf-8") if fd is not None else None

    def progress(phase: str, done: int, total: int) -> None:
        assert events is not None
        with contextlib.suppress(OSError):  # a supervisor gone or deaf: ingest on regardless
            events.write(json.dumps({"phase": phase, "done": done, "total": total}) + "\n")

    try:
        batch = ingest(job["lake"], open_landing(job["landing"]), job["names"],
                       progress=progress if events is not None else None,
                       from_listing=job.get("listed", False))
        doc = _result_to_doc(batch)
    except Exception as exc:
        doc = {"error": {"type": type(exc).__name__, "message": str(exc),
                         "user": isinstance(exc, BtlakeError)}}
    tmp = Path(job["out"] + ".part")
    tmp.write_text(json.dumps(doc, default=str))
    tmp.replace(job["out"])
    return 0


if __name__ == "__main__":
    _die_with_parent()
    code = _child(sys.argv[1])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # never a native abort at interpreter shutdown (TRAPS.md)
