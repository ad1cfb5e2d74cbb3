"""``btlake replicate`` (CONTRACT section 8): copy the lake to a replica, once or following it,
show the replica's lag, or promote a replica after a disaster."""

from __future__ import annotations

import sys
import time

import click

from btlake_pipelines.errors import BtlakeError
from btlake_pipelines.interfaces.cli.context import lake, location_options, settings


@click.command("replicate")
@click.option("--to", metavar="URI",
              help="the replica's root: a folder or s3://bucket/prefix (env BTLAKE_REPLICA)")
@click.option("--follow", is_flag=True, help="keep replicating, a round every --interval")
@click.option("--interval", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              metavar="SECONDS", help="pause between rounds with --follow")
@click.option("--status", is_flag=True, help="show the replica's lag instead of copying")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="--status output")
@click.option("--promote", is_flag=True,
              help="make the lake (--lake, a replica) a primary after a disaster")
@location_options
def replicate(to: str | None, follow: bool, interval: float, status: bool, fmt: str,
              promote: bool) -> int:
    """Copy the lake to a replica: data files before the log entries that name them, log
    entries in version order; each run copies only what is new."""
    if promote:
        was = lake().promote()
        print(f"{settings().lake}: {'promoted to a primary' if was else 'not a replica'}")
        return 0
    if status:
        found = lake().replication_status(to)
        if fmt == "json":
            import json

            print(json.dumps(found.to_dict()))
        else:
            print("\n".join(found.lines()))
        return 0
    if not follow:
        print(lake().replicate(to).summary())
        return 0
    while True:
        try:
            report = lake().replicate(to)
            print(f"{time.strftime('%H:%M:%S')} {report.summary()}", flush=True)
        except BtlakeError as exc:  # the next round starts over from the replica's logs
            if exc.param == "to":
                raise
            print(f"btlake: warning: {exc}", file=sys.stderr, flush=True)
        time.sleep(interval)
