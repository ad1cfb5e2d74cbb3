"""btlake's benchmark suite: every case of issue 6 measured side by side with the peers a user
would pick instead (ArcticDB, MLflow, SQLite, raw Parquet / Delta), in one run.

    .venv/bin/python -m bench run            # full sizes, installs peers into bench/.peers-venv
    .venv/bin/python -m bench run --quick    # tiny sizes, peers only if already installed

Data is built under ``bench/work/`` (gitignored); results go to ``bench/results/latest.md``,
``latest.json`` and ``ratios.svg`` (``ratios.png`` too when matplotlib is in the peers venv).
"""
