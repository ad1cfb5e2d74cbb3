"""A bundle whose ingestion kills the process (contract section 6): retried once, then quarantined
with the rule ``ingest_crashed``, through the CLI, the Dagster ingestion run and an upload to
``btlake serve``; every other bundle lands and the server stays up.

The crash is real: ``BTLAKE_FAULT_POINT=crash_on:<bundle>`` makes the native write of any
commit holding that bundle's rows read address 0 in C (SIGSEGV, as deltalake's stack overflow
did), see ``btlake_pipelines.ingest.faults``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from dagster import DagsterInstance

from btlake_pipelines import Lake
from btlake_pipelines.defs.jobs import ingest_job
from btlake_pipelines.defs.resources import LakeResource, LandingZoneResource
from btlake_pipelines.ingest.isolated import RULE, ingest_isolated
from btlake_pipelines.landing.local import LocalLandingZone

try:
    from . import robust_kit as K
except ImportError:
    import robust_kit as K

POISON = "poison-drop"
CRASH = {"BTLAKE_FAULT_POINT": f"crash_on:{POISON}"}


def _landing(landing: Path) -> list[str]:
    K.write_raw(landing / POISON, K.market_manifest(POISON),
                {"ticks.parquet": K.parquet_bytes(K.ticks_table(5, symbol="POISON"))})
    good = ["good-run-1", "good-run-2"]
    for name in good:
        K.write_good(landing, name)
    K.write_raw(landing / "good-ticks", K.market_manifest("good-ticks"),
                {"ticks.parquet": K.parquet_bytes(K.ticks_table(4, symbol="MSFT"))})
    return [*good, "good-ticks"]


def _assert_poison_quarantined(lake: Path, landing: Path, good: list[str]) -> None:
    assert not any(landing.iterdir()), list(landing.iterdir())  # nothing left behind
    reason = K.reasons(lake)[POISON]
    assert reason["rule"] == RULE and reason["table"] == "ticks"
    assert "SIGSEGV" in reason["message"] and "2 times" in reason["message"]
    assert K.quarantined_names(lake)[POISON] == 1
    archived = K.archived(lake)
    assert all(archived[name] == 1 for name in good)
    # the quarantined copy is whole: nothing is lost
    folder = next(p for p in (lake / "_quarantine").iterdir() if p.name.startswith(POISON))
    assert (folder / "ticks.parquet").exists() and (folder / "manifest.json").exists()
    log = [r for r in K.ingest_log(lake) if r["bundle"] == POISON]
    assert [r["status"] for r in log] == ["quarantined"]
    lk = Lake(str(lake))
    assert lk.read("ticks", symbol="POISON").num_rows == 0
    assert lk.read("ticks", symbol="MSFT").num_rows == 4
    assert set(lk.runs().column("run_id").to_pylist()) == {"good-run-1", "good-run-2"}


def test_cli_retries_a_crashing_bundle_once_then_quarantines_it(tmp_path):
    lake, landing = tmp_path / "lake", tmp_path / "landing"
    good = _landing(landing)
    proc = K.run_cli("--lake", str(lake), "--landing", str(landing), "ingest", env=CRASH)
    assert proc.returncode == 1, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[:-1]}
    assert "quarantined" in lines[POISON] and RULE in lines[POISON]
    assert all(lines[name].endswith("ingested") for name in good)
    _assert_poison_quarantined(lake, landing, good)
    # a later ingest has nothing to retry: no loop
    again = K.run_cli("--lake", str(lake), "--landing", str(landing), "ingest", env=CRASH)
    assert again.returncode == 0 and "0 bundle(s)" in again.stdout


def test_a_crash_that_does_not_repeat_costs_nothing(tmp_path, monkeypatch):
    """A batch whose child dies once (the poison), with the poison removed before the retry:
    every bundle lands on its solo retry, none is quarantined."""
    lake, landing = tmp_path / "lake", tmp_path / "landing"
    good = _landing(landing)
    monkeypatch.setenv("BTLAKE_FAULT_POINT", f"crash_on:{good[0]}")
    from btlake_pipelines.ingest import isolated

    real = isolated._run_child
    calls = []

    def once(lake_, zone, names, progress, listed=False, keep_warm=False):
        calls.append(list(names))
        if len(calls) == 2:
            os.environ.pop("BTLAKE_FAULT_POINT", None)  # the cause went away
        return real(lake_, zone, names, progress, listed, keep_warm)

    monkeypatch.setattr(isolated, "_run_child", once)
    batch = ingest_isolated(str(lake), LocalLandingZone(str(landing)))
    assert set(calls[0]) == {*good, POISON}
    assert all(len(c) == 1 for c in calls[1:])  # retried one by one
    assert {r.bundle: r.status for r in batch.results} == {
        **{n: "ingested" for n in good}, POISON: "ingested"}


def test_the_dagster_ingestion_run_survives_and_quarantines(tmp_path, monkeypatch):
    lake, landing = tmp_path / "lake", tmp_path / "landing"
    good = _landing(landing)
    monkeypatch.setenv("BTLAKE_FAULT_POINT", CRASH["BTLAKE_FAULT_POINT"])
    with DagsterInstance.ephemeral() as instance:
        result = ingest_job.execute_in_process(
            run_config={"ops": {"ingest_bundles": {"config": {
                "bundles": sorted([*good, POISON])}}}},
            resources={"lake": LakeResource(uri=str(lake)),
                       "landing": LandingZoneResource(uri=str(landing))},
            instance=instance)
        assert result.success
    _assert_poison_quarantined(lake, landing, good)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _upload(base: str, folder: Path) -> httpx.Response:
    doc = json.loads((folder / "manifest.json").read_text())
    files = [("manifest", ("manifest.json", (folder / "manifest.json").read_bytes(),
                           "application/json"))]
    files += [("files", (name, (folder / name).read_bytes(), "application/octet-stream"))
              for name in doc["tables"].values()]
    return httpx.post(f"{base}/api/v1/bundles", params={"ingest": "now"}, files=files,
                      timeout=120)


@pytest.mark.e2e
def test_an_upload_that_crashes_ingestion_does_not_kill_the_server(tmp_path):
    lake, landing, src = tmp_path / "lake", tmp_path / "landing", tmp_path / "src"
    good = _landing(src)
    port = _free_port()
    env = {**os.environ, **CRASH, "BTLAKE_LAKE": str(lake), "BTLAKE_LANDING": str(landing)}
    server = subprocess.Popen([K.BTLAKE, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=K.REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/api/v1/health", timeout=2)
                break
            except httpx.HTTPError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
        crashed = _upload(base, src / POISON)
        assert crashed.status_code == 422, crashed.text
        body = crashed.json()
        assert body["status"] == "quarantined" and body["reason"]["rule"] == RULE
        assert server.poll() is None
        assert httpx.get(f"{base}/api/v1/health", timeout=5).status_code == 200
        for name in good:
            answer = _upload(base, src / name)
            assert answer.status_code == 200 and answer.json()["status"] == "ingested"
    finally:
        server.terminate()
        server.wait(timeout=30)
    _assert_poison_quarantined(lake, landing, good)
