#!/usr/bin/env bash
# Sets up .venv for running and testing MultiTalk Desktop on a fresh machine with only Python.
# Idempotent: re-running reuses the venv and skips pip when nothing it depends on changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.12 python3.11 python3.10 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "MultiTalk Desktop needs Python 3.10 or newer." >&2; exit 1; }

bash scripts/system_deps.sh

if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $PY"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.multitalk-setup
want=$(cat pyproject.toml constraints.txt scripts/setup.sh 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
"$VPY" -m pip install -q --upgrade pip
# torch first, pinned: 2.13.0 is the build the suite was last run with (a CPU wheel on the
# development machines). An unpinned torch would pull several GB of CUDA wheels.
if ! "$VPY" -c 'import torch' >/dev/null 2>&1; then
  "$VPY" -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
fi
"$VPY" -m pip install -q -c constraints.txt -e ".[dev]"
echo "$want" > "$stamp"
