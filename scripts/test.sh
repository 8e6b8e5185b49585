#!/usr/bin/env bash
# One command for the whole test suite: services, .venv, lint, types, tests.
# Extra arguments go to pytest (for example -m "not slow and not integration" for a quick run).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
  bash scripts/install-services.sh
else
  echo "test.sh: not root; Prometheus/Alertmanager tests skip unless their binaries are installed"
fi
FINMON_EXTRAS=dev bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
ruff check monitor pipelines alerts tests scripts
ruff format --check monitor pipelines alerts tests scripts
mypy
python -m pytest "$@"
