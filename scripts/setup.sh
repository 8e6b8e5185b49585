#!/usr/bin/env bash
# Create .venv and install FinMon into it (idempotent). Used by demo.sh and test.sh.
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

pip_install() {
  # This machine's pip config names optional local indexes that may be absent; hide that noise.
  python -m pip install --quiet --disable-pip-version-check "$@" 2>&1 | grep -v "^WARNING: Location" || true
  return "${PIPESTATUS[0]}"
}

if ! python -c "import torch" 2>/dev/null; then
  pip_install "torch==2.13.0"
fi
extras=${FINMON_EXTRAS:-}
pip_install -e ".${extras:+[$extras]}"
python -c "import monitor, torch; print('finmon ready: torch', torch.__version__)"
