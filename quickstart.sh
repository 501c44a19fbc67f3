#!/usr/bin/env bash
# One command on a fresh machine: create .venv, install mmkeras with pinned
# dependencies, run the quickstart (train, compare, TensorBoard, export, serve).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[plot]"   # plot: the labelled confusion matrix in TensorBoard
# Arguments go to the script: --seed N (data and initial weights), --check-only (train and check only).
exec .venv/bin/python tutorials/quickstart.py "$@"
