#!/usr/bin/env bash
# One command on a fresh machine: create .venv, install mmkeras with its test
# extras (pytest, tensorflow-serving-api, jax CPU, keras-hub, mkdocs, import-linter)
# and the pretrained weights the tests load (pip --no-deps: no PyTorch), lint, check
# the import layers, build the API reference, run the whole suite.
# Tests run in PYTEST_WORKERS processes (default 2, one per core of the CI
# machine), a test file per worker at a time so module fixtures are built once;
# most of a test's time is single-threaded tracing, so two workers overlap well.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m mmkeras.weights install minilm_l6 efficientnet_lite0 speech_embedding >/dev/null
.venv/bin/ruff check mmkeras tests benchmarks tutorials
.venv/bin/lint-imports --no-cache  # one-way imports, no cycles (.importlinter); under a second
# The API reference (mkdocs.yml): --strict fails on a reference that does not resolve. ~7 s.
# No --quiet: it hides the warnings that strict mode counts, and the build passes.
site_dir="$(mktemp -d)"
.venv/bin/mkdocs build --strict --site-dir "$site_dir"
rm -rf "$site_dir"
# The slowest tests (each taking 1 s or more, up to 25) are listed at the end of the log.
# --no-loadscope-reorder: files start in collection order, which tests/conftest.py sorts slowest
# first (xdist's default starts the files with the most tests first: the slowest, one-test files
# ran last). The suite takes 18-20 min on the idle 2-core machine, both cores busy throughout.
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-2}" --dist loadfile \
    --no-loadscope-reorder --durations=25 --durations-min=1 "$@"
