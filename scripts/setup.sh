#!/usr/bin/env bash
# Install convbench into the current Python. Keeps an existing torch (e.g. a CUDA build on a GPU
# machine); with none, pins the CPU build first so pip does not pull GBs of CUDA packages.
# Usage: bash scripts/setup.sh          (the tool)
#        bash scripts/setup.sh dev      (plus pytest, ruff, tensorboard + torch-tb-profiler for tests)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q "torch==2.13.0" || "$PY" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
extras=""
[ "${1:-}" = "dev" ] && extras="[dev,profile]"
"$PY" -m pip install -q -e ".${extras}"
