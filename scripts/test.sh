#!/usr/bin/env bash
# Set up and run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Lint and import order on the whole tree, types of the device half (pyproject.toml: [tool.ruff], [tool.mypy]).
.venv/bin/ruff check --quiet .
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
