"""The serving process's memory policy (monitor/memory.py), checked in fresh interpreters: the
caps reach the environment torch reads, and an operator's own values are kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from monitor.memory import (
    CACHE_VARIABLES,
    bound_native_caches,
    freeze_loaded_objects,
    limit_malloc_arenas,
)

REPORT = (
    "import json, os, sys\n"
    "sys.argv = ['finmon', '--help']\n"
    "from monitor import cli\n"
    "try:\n"
    "    cli.main()\n"
    "except SystemExit:\n"
    "    pass\n"
    "names = ('LRU_CACHE_CAPACITY', 'ONEDNN_PRIMITIVE_CACHE_CAPACITY', 'MALLOC_ARENA_MAX')\n"
    "print(json.dumps({n: os.environ.get(n) for n in names}))\n"
)


def _run(extra_env: dict[str, str]) -> dict[str, str | None]:
    env = {k: v for k, v in os.environ.items() if k not in (*CACHE_VARIABLES, "MALLOC_ARENA_MAX")}
    result = subprocess.run(
        [sys.executable, "-c", REPORT],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, **extra_env},
        check=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_command_caps_the_primitive_caches_before_torch_loads() -> None:
    assert _run({}) == {
        "LRU_CACHE_CAPACITY": "64",
        "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "64",
        "MALLOC_ARENA_MAX": None,  # set in the process by mallopt, not in its environment
    }
    kept = _run({"LRU_CACHE_CAPACITY": "512"})
    assert kept["LRU_CACHE_CAPACITY"] == "512" and kept["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"


def test_bound_native_caches_keeps_what_is_set() -> None:
    environ = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "8"}
    bound_native_caches(environ, entries=32)
    assert environ == {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "8", "LRU_CACHE_CAPACITY": "32"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_malloc_arenas_are_limited_unless_the_variable_already_did() -> None:
    assert limit_malloc_arenas({}) is True
    assert limit_malloc_arenas({"MALLOC_ARENA_MAX": "4"}) is False


def test_freeze_moves_live_objects_out_of_the_collected_generations() -> None:
    import gc

    loaded = [[i] for i in range(10_000)]  # stands in for a loaded model's objects
    try:
        frozen = freeze_loaded_objects()
        # Other threads' objects come and go from the permanent generation: only a lower bound.
        assert frozen >= len(loaded)
        collected = {id(o) for o in gc.get_objects(generation=2)}
        assert not any(id(x) in collected for x in loaded)
    finally:
        gc.unfreeze()
