"""The ``btlake`` command line: :mod:`.main` (entry point and error policy), :mod:`.commands`
(one function per command), :mod:`.context` (settings and the ``Lake``), :mod:`.render`."""

from btlake_pipelines.interfaces.cli.main import main

__all__ = ["main"]
