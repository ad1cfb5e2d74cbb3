"""``python -m btlake_pipelines.interfaces.cli``: the ``btlake`` command."""

from btlake_pipelines.interfaces.cli.main import main

main()
