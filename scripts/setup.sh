#!/usr/bin/env bash
# Create .venv and install FinMon into it (idempotent). Sourced by demo.sh and test.sh.
# torch is pinned to the CPU wheel this machine kind keeps on disk; pip would otherwise pull a
# multi-GB CUDA build. On a CUDA machine, install the torch build you want first: it is kept.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" 2>&1 \
    | grep -v "^WARNING: Location" || true
  python -c "import torch" # fail loudly if the install did
fi
extras=${FINMON_EXTRAS:-}
python -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}" 2>&1 \
  | grep -v "^WARNING: Location" || true
python -c "import monitor, torch; print('finmon ready: torch', torch.__version__)"
