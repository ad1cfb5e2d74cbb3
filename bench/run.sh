#!/usr/bin/env bash
# The benchmark in one command: bash bench/run.sh [--quick] [--cases a,b] [--no-peers]
# Creates .venv first when it is missing (through ./dev.sh, which also runs the bench's smoke
# test), then runs `python -m bench run` with the arguments given. Results: bench/results/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then
    ./dev.sh test tests/bench -q
fi
exec .venv/bin/python -m bench run "$@"
