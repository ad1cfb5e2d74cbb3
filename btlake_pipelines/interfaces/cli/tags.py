"""``btlake tag create|list|delete``, ``btlake lineage`` and ``btlake diff`` (CONTRACT section
7): each calls one ``Lake`` method and formats its typed result."""

from __future__ import annotations

from typing import Any

import click

import btlake_pipelines.interfaces.cli.render as render
from btlake_pipelines.interfaces.cli.context import lake, location_options

TABLE_OR_JSON = click.Choice(["table", "json"])


@click.group("tag")
@location_options
def tag() -> None:
    """Lake-wide tags: the version of every table, recorded at once."""


@tag.command("create")
@click.argument("name", metavar="NAME")
@click.option("--message", metavar="TEXT", help="what the tag is for")
@location_options
def create(name: str, message: str | None) -> int:
    """Record the current version of every table as NAME (tags are immutable)."""
    made = lake().tag_create(name, message)
    pins = ", ".join(f"{t}@{v}" for t, v in made.versions.items()) or "no tables yet"
    print(f"tagged {made.name}: {pins}")
    return 0


@tag.command("list")
@click.option("--format", "fmt", type=TABLE_OR_JSON, default="table", show_default=True)
@location_options
def list_(fmt: str) -> int:
    """Every tag, oldest first, with the versions it pins."""
    records = [t.record() for t in lake().tags()]
    if fmt == "json":
        render.print_json({"tags": records})
    else:
        rows = [{**r, "versions": [f"{k}@{v}" for k, v in r["versions"].items()]}
                for r in records]
        render.show(render.table(rows, ["name", "created_at", "message", "versions"],
                                 max_width=80, title=f"{len(rows)} tag(s)"))
    return 0


@tag.command("delete")
@click.argument("name", metavar="NAME")
@location_options
def delete(name: str) -> int:
    """Remove tag NAME: maintenance may then vacuum the versions only it kept."""
    lake().tag_delete(name)
    print(f"deleted tag {name}")
    return 0


@click.command("lineage")
@click.argument("run_id", metavar="RUN_ID")
@click.option("--format", "fmt", type=TABLE_OR_JSON, default="table", show_default=True)
@location_options
def lineage(run_id: str, fmt: str) -> int:
    """What a run read: each input's slice, its resolved version, and whether it is stale."""
    doc = lake().lineage(run_id)
    if fmt == "json":
        render.print_json(doc)
    else:
        render.show(render.table(doc["inputs"], ["table", "market", "symbols", "start", "end",
                                                 "version", "resolved_by", "stale"],
                                 title=f"inputs of {run_id}",
                                 marked=lambda r: bool(r.get("stale"))))
    return 0


@click.command("diff")
@click.argument("table", metavar="TABLE")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--format", "fmt", type=TABLE_OR_JSON, default="table", show_default=True)
@location_options
def diff(table: str, a: str, b: str, fmt: str) -> int:
    """Rows added and removed per partition between versions (or tag:NAME) A and B."""
    doc: dict[str, Any] = lake().table_diff(table, a, b)
    if fmt == "json":
        render.print_json(doc)
    else:
        render.show(render.table(doc["partitions"], ["market", "date", "added", "removed"],
                                 title=f"{table}: version {doc['a']} -> {doc['b']}, "
                                       f"+{doc['added']} -{doc['removed']} rows"))
    return 0


COMMANDS = (tag, lineage, diff)
