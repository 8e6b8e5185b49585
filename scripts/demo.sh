#!/usr/bin/env bash
# One command for a newcomer: install everything into .venv, then run `finmon demo`.
# Extra arguments go to `finmon demo` (for example --forever).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/finmon demo "$@"
