"""Locating the Prometheus tool binaries and the shipped deploy/ tree for the deploy tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules"
RULE_TESTS = DEPLOY / "prometheus" / "tests"
INSTALL_HINT = (
    "install with scripts/install-services.sh (Debian packages prometheus, prometheus-alertmanager)"
)


def require(*names: str) -> str:
    """Path of the first of ``names`` on PATH; skips the test with a clear message if none."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"{' / '.join(names)} not found on PATH: {INSTALL_HINT}")


def alertmanager_binary() -> str:
    return require("prometheus-alertmanager", "alertmanager")
