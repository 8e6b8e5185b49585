"""The aggregate and source roles import neither torch nor transformers: only loading a model
does (``monitor.daemon.load_classifier``), so those roles restart in about a second. Checked in
a fresh interpreter, since this test process has long imported torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers")

BUILD_ROLES = """
import json, sys
from monitor.daemon import Daemon
from monitor.settings import load_settings

state, drop = sys.argv[1], sys.argv[2]
for role in ("aggregate", "source"):
    overrides = {"role": role, "state": {"dir": state}, "sources": {"drop_folder": {"dir": drop}}}
    Daemon.from_settings(load_settings(None, environ={}, overrides=overrides))
print(json.dumps([name for name in %r if name in sys.modules]))
"""


def _heavy_modules_after(code: str, *args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def test_importing_the_daemon_and_the_command_imports_no_torch() -> None:
    code = (
        "import json, sys\nimport monitor.daemon\nfrom monitor.cli import build_app\nbuild_app()\n"
        f"print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))"
    )
    assert _heavy_modules_after(code) == []


def test_building_the_aggregate_and_source_roles_imports_no_torch(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    code = BUILD_ROLES % (HEAVY,)
    assert _heavy_modules_after(code, str(tmp_path / "state"), str(drop)) == []
