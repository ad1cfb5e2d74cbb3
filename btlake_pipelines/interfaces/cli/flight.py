"""``btlake flight``: serve Arrow Flight (contract section 9) over the lake."""

from __future__ import annotations

import click

from btlake_pipelines.interfaces.cli.context import lake, location_options


@click.command("flight")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8815, show_default=True,
              help="0 picks a free port (printed at start)")
@location_options
def flight(host: str, port: int) -> int:
    """Serve Arrow Flight: DoPut streams of market data (exactly once per writer and seq),
    DoGet reads, DoAction last_seq. Tokens as for 'btlake serve'."""
    from btlake_pipelines.interfaces.flight.server import serve

    serve(host=host, port=port, lake=lake())
    return 0
