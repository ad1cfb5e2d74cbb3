"""One interface over the place bundles land, so ingestion and the sensor never care whether it
is a local folder or an object-store prefix.

Only bundle names that passed the run-id rule, or that the zone itself listed, are ever joined
into a path; file names come from a checked manifest or from the zone's own listing.
"""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Entry:
    """One name inside a bundle folder, as the zone sees it (symlinks are not followed)."""

    name: str
    kind: str  # "file", "dir", "symlink" or "other"
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class NewBundles:
    """One step of :meth:`LandingZone.list_new`: complete bundles offered now, next cursor."""

    names: list[str]
    cursor: str


class LandingZone(ABC):
    """Where bundles wait to be ingested. Handled bundles leave it (archive or quarantine),
    so listing it costs what is pending, not what was ever landed."""

    uri: str

    @abstractmethod
    def bundle_names(self) -> list[str]:
        """Every top-level folder name, complete or not, sorted."""

    @abstractmethod
    def has_manifest(self, name: str) -> bool:
        """Whether the bundle is complete (its manifest, written last, is there)."""

    @abstractmethod
    def entries(self, name: str) -> dict[str, Entry]:
        """The names directly inside a bundle folder."""

    @abstractmethod
    def read_bytes(self, name: str, file_name: str) -> bytes:
        """The whole content of one file of a bundle."""

    @contextmanager
    def open_file(self, name: str, file_name: str) -> Iterator[BinaryIO]:
        """One file of a bundle as a seekable binary file, for reading it in pieces without
        holding it in memory; here spooled to a temporary file, where a zone can do better."""
        with tempfile.TemporaryFile() as fh:
            fh.write(self.read_bytes(name, file_name))
            fh.seek(0)
            yield fh

    @abstractmethod
    def write_file(self, name: str, file_name: str, source: BinaryIO) -> None:
        """Write one file of a bundle, atomically (temporary name, then rename/commit)."""

    @abstractmethod
    def move_to(self, name: str, target_uri: str) -> None:
        """Move a whole bundle folder to ``target_uri`` (in the lake's archive or quarantine).

        The copy at the target is complete before the landing copy is removed, so a crash
        leaves the bundle in landing (handled again, idempotently), never nowhere."""

    def is_link(self, name: str) -> bool:
        """Whether the bundle folder itself is a symbolic link (refused, never followed)."""
        return False

    @contextmanager
    def claim(self, names: list[str]) -> Iterator[list[str]]:
        """Claim bundles for one batch: yields those of ``names`` this process may handle,
        leaving out any another ingester holds or that left landing meanwhile. A claim lasts
        until the block ends, and ends with the process however it dies. This base zone claims
        nothing (every name is yielded); a zone shared by concurrent ingesters overrides it."""
        yield list(names)

    def location(self, name: str) -> str:
        return f"{self.uri}/{name}"

    def complete_bundles(self) -> list[str]:
        return [n for n in self.bundle_names() if self.has_manifest(n)]

    def list_new(self, cursor: str | None) -> NewBundles:
        """Complete bundles that arrived since ``cursor`` (None: first call), and the cursor to
        pass next time; what the landing sensor calls on each tick. A bundle may be offered
        again (the sensor remembers what it requested). This default offers every complete
        bundle each time: right for a folder, whose listing costs what is pending; a zone with
        expensive listings (S3) overrides it to read only what is new."""
        return NewBundles(self.complete_bundles(), cursor or "")

