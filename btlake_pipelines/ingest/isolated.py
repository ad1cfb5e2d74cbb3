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

A child costs an interpreter start and the imports of Arrow, polars, deltalake and pandera,
about a second. It is therefore started before its job is known: first thing in
:func:`ingest_isolated` (its imports overlap the listing of landing, and this module imports
none of them), and, for a long-lived caller such as the HTTP server (``keep_warm``), right
after the previous ingest, so the next upload finds it ready. The child reads its job from
stdin and writes every message (progress, breadcrumbs, the result) as one JSON line to a pipe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from btlake_pipelines.errors import BtlakeError, BundleRefused
from btlake_pipelines.landing.zone import LandingZone
from btlake_pipelines.settings import current, environment_for_child

if TYPE_CHECKING:
    from btlake_pipelines.ingest.writing import BatchResult

Progress = Callable[[str, int, int], None]
#: Crashes of one bundle after which it is quarantined instead of tried again.
MAX_CRASHES = 2
RULE = "ingest_crashed"


class IngestFailed(RuntimeError):
    """The ingest failed for a reason outside any bundle (the store, the machine)."""


def ingest_isolated(lake: str, zone: LandingZone, names: list[str] | None = None, *,
                    progress: Progress | None = None, keep_warm: bool = False) -> BatchResult:
    """Ingest ``names`` (default: every complete bundle) in child processes, quarantining a
    bundle whose ingestion kills its process twice. ``progress``: called here, in the
    caller's process, with each ``(phase, done, total)`` event of the children (they send
    them as JSON lines through a pipe), so the caller decides how progress is shown.
    ``keep_warm``: leave a child started for the next call (a long-lived caller)."""
    prestart()  # its imports overlap the listing below
    try:
        return _ingest(lake, zone, names, progress, keep_warm)
    finally:
        if keep_warm:
            prestart()
        else:
            release()


def _ingest(lake: str, zone: LandingZone, names: list[str] | None,
            progress: Progress | None, keep_warm: bool) -> BatchResult:
    from btlake_pipelines.ingest.batch import BatchResult, quarantine_refused

    listed = names is None
    names = zone.complete_bundles() if names is None else list(names)
    merged = BatchResult(batch_id="")
    crashes: dict[str, int] = {}
    queue: list[list[str]] = [names] if names else []
    while queue:
        # the child keeps only bundles still landed; a retry's bundle was looked up at its crash
        batch = queue.pop(0)
        done, crash = _run_child(lake, zone, batch, progress, listed, keep_warm)
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


# --- the children ----------------------------------------------------------------------------


class _Child:
    """One ingesting child process, started ahead of its job: it imports what ingestion
    needs, then waits for one job on stdin, runs it and exits."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        read_end, write_end = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "btlake_pipelines.ingest.isolated", str(write_end)],
                env=env, stdin=subprocess.PIPE, pass_fds=(write_end,))
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # the child holds the only write end: EOF when it ends
        self.messages = os.fdopen(read_end, "r", encoding="utf-8", errors="replace")

    def fits(self, env: dict[str, str]) -> bool:
        """Whether this child is alive and was started with the environment ``env`` (but
        for what imports set, see :data:`_SET_BY_IMPORTS`)."""
        return _comparable(self.env) == _comparable(env) and self.proc.poll() is None

    def run(self, job: dict, progress: Progress | None
            ) -> tuple[dict | None, int, str | None]:
        """Hand ``job`` over and follow the child to its end: (its result document or None,
        its exit status, the table its last breadcrumb names)."""
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):  # it died waiting: reported below, as a crash
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            self.proc.stdin.close()
        result, table = None, None
        with self.messages as lines:
            for line in lines:  # read to the end even if showing fails: the child never blocks
                try:
                    (kind, value), = json.loads(line).items()
                except (ValueError, AttributeError):
                    continue
                if kind == "result":
                    result = value
                elif kind == "crumb":
                    table = value.get("table")
                elif kind == "progress" and progress is not None:
                    with contextlib.suppress(Exception):  # progress never costs an ingest
                        progress(str(value[0]), int(value[1]), int(value[2]))
        return result, self.proc.wait(), table

    def release(self) -> None:
        """Let an unused child go: on end of input it exits without doing anything."""
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        self.messages.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_lock = threading.Lock()
_ready: _Child | None = None
#: Children are started from this one thread, which lives as long as the process: Linux sends
#: ``PR_SET_PDEATHSIG`` when the *thread* that started a child ends, and a server's request
#: thread may end while the child it started ahead still has work to do.
_spawner: ThreadPoolExecutor | None = None


#: Variables that imports of pandera and polars set in this process (seen with pandera 0.35
#: and polars 2.1): a child started before those imports is still the right one.
_SET_BY_IMPORTS = frozenset({"SPARK_LOCAL_IP", "PYARROW_IGNORE_TIMEZONE", "_RJEM_MALLOC_CONF"})


def _comparable(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in _SET_BY_IMPORTS}


def _child_environment() -> dict[str, str]:
    return environment_for_child(current().with_(supervised_by=os.getpid()))


def _start(env: dict[str, str]) -> _Child:
    global _spawner
    with _lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(1, thread_name_prefix="btlake-ingest-spawner")
        spawner = _spawner
    return spawner.submit(_Child, env).result()


def prestart() -> None:
    """Have a child ready for this process's next ingest (no-op when one with the current
    settings is)."""
    global _ready
    env = _child_environment()
    with _lock:
        stale, _ready = (None, _ready) if _ready is not None and _ready.fits(env) \
            else (_ready, None)
        if _ready is not None:
            return
    if stale is not None:
        stale.release()
    child = _start(env)
    with _lock:
        spare, _ready = _ready, child
    if spare is not None:  # another thread started one meanwhile
        spare.release()


def release() -> None:
    """Let the child started ahead go, if it is still unused."""
    global _ready
    with _lock:
        child, _ready = _ready, None
    if child is not None:
        child.release()


def _take(successor: bool) -> _Child:
    """The child started ahead when it fits the current settings, else a new one.
    ``successor``: start the next one at once (``keep_warm``), so back-to-back uploads find
    it (mostly) imported."""
    global _ready
    env = _child_environment()
    with _lock:
        child, _ready = _ready, None
    if child is None or not child.fits(env):
        if child is not None:
            child.release()
        child = _start(env)
    if successor:
        prestart()
    return child


def _run_child(lake: str, zone: LandingZone, names: list[str], progress: Progress | None,
               listed: bool = False, keep_warm: bool = False
               ) -> tuple[BatchResult | None, tuple[str, str | None]]:
    """(the child's result, None) or (None, (signal name, table being written))."""
    job = {"lake": lake, "landing": zone.uri, "names": names, "listed": listed,
           "progress": progress is not None}
    doc, code, table = _take(keep_warm).run(job, progress)
    if doc is not None:
        return _result_from_doc(doc), ("", None)
    if code < 0:
        return None, (signal.Signals(-code).name, table)
    return None, (f"exit status {code}", table)


def _merge(into: BatchResult, part: BatchResult) -> None:
    into.batch_id = into.batch_id or part.batch_id
    into.results += part.results
    for table, versions in part.commits.items():
        into.commits.setdefault(table, []).extend(versions)


def _result_to_doc(batch: BatchResult) -> dict:
    return {"batch_id": batch.batch_id, "commits": batch.commits,
            "results": [dataclasses.asdict(r) for r in batch.results]}


def _result_from_doc(doc: dict) -> BatchResult:
    from btlake_pipelines.ingest.batch import BatchResult
    from btlake_pipelines.metadata.ingest_log import BundleResult

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


def _serve(fd: int) -> int:
    """The child: import what ingestion needs, wait for the job on stdin (none: released
    unused), run it and send the result; every message is one JSON line on ``fd``."""
    messages = os.fdopen(fd, "w", buffering=1, encoding="utf-8")

    def send(kind: str, value) -> None:
        with contextlib.suppress(OSError):  # a supervisor gone or deaf: ingest on regardless
            messages.write(json.dumps({kind: value}, default=str) + "\n")

    from btlake_pipelines.ingest import breadcrumb
    from btlake_pipelines.ingest.batch import ingest
    from btlake_pipelines.landing import open_landing

    line = sys.stdin.readline()
    if not line.strip():
        return 0
    job = json.loads(line)
    breadcrumb.report_to(lambda crumb: send("crumb", crumb))
    try:
        batch = ingest(job["lake"], open_landing(job["landing"]), job["names"],
                       progress=(lambda phase, done, total: send("progress", [phase, done, total]))
                       if job["progress"] else None,
                       from_listing=job["listed"])
        doc = _result_to_doc(batch)
    except Exception as exc:
        doc = {"error": {"type": type(exc).__name__, "message": str(exc),
                         "user": isinstance(exc, BtlakeError)}}
    send("result", doc)
    return 0


if __name__ == "__main__":
    _die_with_parent()
    code = _serve(int(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # never a native abort at interpreter shutdown (TRAPS.md)
