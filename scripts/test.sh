#!/usr/bin/env bash
# Creates .venv if missing, installs the project with its test tools, lints, runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ruff check .
python -m pytest -n 2 "$@"
