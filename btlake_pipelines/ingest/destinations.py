"""Where a handled bundle goes: one archive copy per handling, or quarantine with its reason.

Names here are built only from checked run ids, timestamps and hashes; a folder whose name is not
a valid run id gets a made-up quarantine name and keeps its original name in ``reason.json``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from btlake_pipelines.contract.run_ids import is_valid_run_id
from btlake_pipelines.settings import ARCHIVE_DIR, QUARANTINE_DIR
from btlake_pipelines.storage import lake_files


def stamp(when: datetime) -> str:
    return when.strftime("%Y%m%dT%H%M%S%fZ")


def archive_uri(lake: str, run_id: str, content_hash: str, when: datetime) -> str:
    """``_archive/<run_id>/<time>-<hash>``: a new folder per handling, never overwritten."""
    return lake_files.join(lake, ARCHIVE_DIR, run_id, f"{stamp(when)}-{content_hash[:12]}")


def quarantine_uri(lake: str, bundle: str, when: datetime) -> str:
    """``_quarantine/<run_id>`` (``.<time>`` added if taken), or a made-up name for a folder
    whose name is not a valid run id."""
    if is_valid_run_id(bundle):
        base = lake_files.join(lake, QUARANTINE_DIR, bundle)
        return base if not lake_files.exists(base) else f"{base}.{stamp(when)}"
    digest = hashlib.sha256(bundle.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return lake_files.join(lake, QUARANTINE_DIR, f"invalid-name-{digest}-{stamp(when)}")


REASON = "reason.json"


def reason_bytes(reason: dict[str, Any]) -> bytes:
    return json.dumps(reason, indent=2, ensure_ascii=True).encode()


def write_reason(target: str, reason: dict[str, Any]) -> None:
    lake_files.write_bytes(lake_files.join(target, REASON), reason_bytes(reason))
