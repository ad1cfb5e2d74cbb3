"""``python -m bench.ingest_probe LAKE LANDING``: one in-process ``ingest`` call, timed inside a
fresh process, printed as one JSON line.

The bench's own process must survive a bundle that kills its ingester (a native crash in
deltalake, the OOM killer), and should not carry one case's memory into the next; the time
reported is that of ``ingest()`` alone, without interpreter start or imports, so a per-slice
figure is not flattered by a constant start-up cost.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(lake: str, landing: str) -> int:
    from btlake_pipelines.ingest.batch import ingest
    from btlake_pipelines.landing.local import LocalLandingZone

    t0 = time.perf_counter()
    batch = ingest(lake, LocalLandingZone(landing))
    seconds = time.perf_counter() - t0
    doc = {"seconds": seconds, "counts": batch.counts(), "summary": batch.summary(),
           "commits": {t: len(v) for t, v in batch.commits.items()}}
    sys.stdout.write(json.dumps(doc) + "\n")
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # never an Arrow abort at interpreter shutdown (TRAPS.md)
