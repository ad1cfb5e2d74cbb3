"""``python -m bench run [--quick] [--cases a,b] [--no-peers]`` and
``python -m bench scale [--quick] [--sections a,b]``."""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from bench import peers, report
from bench.core import FULL, QUICK, RESULTS, CaseResult, Context


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="build the data, run every case, write bench/results/")
    run.add_argument("--quick", action="store_true",
                     help="tiny sizes, no installs; peers only if already installed")
    run.add_argument("--cases", help="comma-separated subset of: " + ", ".join(_cases()))
    run.add_argument("--no-peers", action="store_true", help="skip ArcticDB and MLflow")
    run.add_argument("--out", default=str(RESULTS), help="results folder")
    run.add_argument("--work", help="data folder (default bench/work/full or bench/work/quick)")
    scale = sub.add_parser("scale", help="measure the slopes of the scale model, write "
                                         "bench/results/scale.md (see docs/SCALE.md)")
    scale.add_argument("--quick", action="store_true", help="tiny sizes: checks the code paths")
    scale.add_argument("--sections", help="comma-separated subset of: " + ", ".join(_sections()))
    scale.add_argument("--out", default=str(RESULTS), help="results folder")
    scale.add_argument("--work", help="data folder (default bench/work/full or bench/work/quick)")
    args = parser.parse_args(argv)
    if args.command == "scale":
        from bench.scale import run_scale

        sys.exit(run_scale(quick=args.quick, out=args.out, work=args.work, only=args.sections,
                           log=log))
    sys.exit(run_bench(quick=args.quick, only=args.cases, no_peers=args.no_peers,
                       out=args.out, work=args.work))


def _sections() -> list[str]:
    from bench.scale import SECTIONS

    return list(SECTIONS)


def _cases() -> list[str]:
    from bench.cases import CASES

    return list(CASES)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_bench(*, quick: bool, only: str | None = None, no_peers: bool = False,
              out: str | None = None, work: str | None = None) -> int:
    from pathlib import Path

    from bench.cases import CASES

    started = time.time()
    if no_peers:
        problems = {name: "skipped (--no-peers)" for name in peers.PACKAGES}
    else:
        log("peers: " + ("checking bench/.peers-venv" if quick else
                         "installing into bench/.peers-venv if needed"))
        t0 = time.perf_counter()
        problems = peers.ensure(install=not quick, log=log)
        for name, why in problems.items():
            log(f"  {name}: {why}")
        log(f"  peers ready in {time.perf_counter() - t0:.0f} s")
    ctx = Context(QUICK if quick else FULL, quick, problems, log,
                  work=Path(work) if work else None)
    selected = [c.strip() for c in only.split(",")] if only else list(CASES)
    unknown = [c for c in selected if c not in CASES]
    if unknown:
        log(f"unknown case(s): {', '.join(unknown)}")
        return 2
    results: list[CaseResult] = []
    peer_versions: dict = {}
    try:
        if any(ctx.has_peer(p) for p in ("arcticdb", "mlflow")):
            try:
                peer_versions = ctx.worker.call("versions")
            except Exception as exc:
                log(f"peer worker failed to start: {exc}")
                ctx.peer_problems.update({"arcticdb": str(exc), "mlflow": str(exc)})
        for key in selected:
            log(f"case {key}")
            t0 = time.perf_counter()
            try:
                result = CASES[key](ctx)
            except Exception as exc:
                log(f"  FAILED: {type(exc).__name__}: {exc}")
                traceback.print_exc()
                result = CaseResult(key, key, error=f"{type(exc).__name__}: {exc}")
                ctx.restart_worker()
            result.seconds = time.perf_counter() - t0
            for t in result.targets:
                mark = {True: "met", False: "MISSED", None: "-"}[t.met]
                log(f"  {t.text}: {t.shown()} [{mark}]")
            log(f"  {result.seconds:.0f} s")
            results.append(result)
    finally:
        ctx.close()
    path = report.write(Path(out or RESULTS), results, ctx, peer_versions,
                        time.time() - started, selected)
    log(f"wrote {path} in {time.time() - started:.0f} s total")
    return 1 if any(r.error for r in results) else 0
