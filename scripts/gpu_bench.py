#!/usr/bin/env python
"""GPU throughput of the classify forward pass and of the whole Kafka path. Installs nothing.

Run on a machine with CUDA, from the repo root, with whatever torch + transformers it has:

    python scripts/gpu_bench.py            # under 5 minutes on an H200, no network
    python scripts/gpu_bench.py --compile  # also try torch.compile (adds compile time)
    python scripts/gpu_bench.py --device cpu --n 256 --e2e-n 512   # the same code paths on CPU

Models have random weights (speed only): a MiniLM-L6-sized encoder (384 hidden, 6 layers) and a
BERT-base-sized one (768 hidden, 12 layers). Inputs are random token ids with lengths drawn
uniformly from 20 to 60 tokens (realistic headlines), length-sorted and padded to the longest
in each batch, exactly as the engine does. It measures, in order:

1. ``forward``: sequences/s per model, precision and batch size, with the dense-FLOP estimate per
   sequence and the share of the GPU's peak (``--peak-tflops``, 790 dense bf16 TFLOP/s for an
   H200). CUDA only.
2. ``tokenise`` on CPU, and ``engine``: the full :class:`TorchClassifier` path on the MiniLM-sized
   model (tokenise, forward, postprocess).
3. ``e2e``: ``finmon bench e2e`` on that model: the embedded broker, the classify role and the
   engine alone on the same texts (:mod:`monitor.classify.bench_e2e`).

Progress lines go to stderr; stdout gets one JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES: dict[str, dict[str, Any]] = {
    "minilm-l6": {
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "num_attention_heads": 12,
        "intermediate_size": 1536,
    },
    "bert-base": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    },
}


def flops_per_seq(cfg: dict[str, Any], tokens: float) -> float:
    """Dense forward FLOPs: 2 x linear params x tokens plus attention scores and mixing."""
    h, layers, ff = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    linear_params = layers * (4 * h * h + 2 * h * ff)
    return 2 * linear_params * tokens + layers * 4 * tokens * tokens * h


def make_batches(
    n: int, batch: int, vocab: int, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(20, 61, (n,), generator=gen).sort().values.tolist()
    out = []
    for start in range(0, n, batch):
        chunk = lengths[start : start + batch]
        longest = max(chunk)
        ids = torch.randint(1000, vocab, (len(chunk), longest), generator=gen)
        mask = torch.zeros_like(ids)
        for row, length in enumerate(chunk):
            mask[row, :length] = 1
        out.append((ids.pin_memory(), mask.pin_memory()))
    return out


def time_model(model: torch.nn.Module, batches: list, seconds: float, autocast: bool) -> float:
    """Sequences per second, looping over ``batches`` for about ``seconds``."""

    def one_pass() -> int:
        done = 0
        for ids, mask in batches:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                out = model(
                    input_ids=ids.cuda(non_blocking=True),
                    attention_mask=mask.cuda(non_blocking=True),
                ).last_hidden_state
                (out * mask.cuda().unsqueeze(-1)).sum(1)
            done += ids.shape[0]
        return done

    with torch.inference_mode():
        one_pass()
        torch.cuda.synchronize()
        seqs, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            seqs += one_pass()
        torch.cuda.synchronize()
        return seqs / (time.perf_counter() - started)


def bench_sizes(args: argparse.Namespace) -> list[dict[str, object]]:
    rows = []
    for name, dims in SIZES.items():
        cfg = BertConfig(**{"vocab_size": 30522, "attn_implementation": "sdpa", **dims})
        for precision in ("bf16-weights", "bf16-autocast"):
            model: Any = BertModel(cfg, add_pooling_layer=False)
            model = model.cuda().eval()
            if precision == "bf16-weights":
                model = model.to(torch.bfloat16)
            variants: list[tuple[str, Any]] = [("eager", model)]
            if args.compile:
                variants.append(("compiled", torch.compile(model, dynamic=True)))
            for mode, runnable in variants:
                for batch in args.batches:
                    batches = make_batches(args.n, batch, cfg.vocab_size)
                    rate = time_model(runnable, batches, args.seconds, precision == "bf16-autocast")
                    limit = args.peak_tflops * 1e12 / flops_per_seq(dims, 40.0)
                    row = {
                        "model": name,
                        "precision": precision,
                        "mode": mode,
                        "batch": batch,
                        "seqs_per_s": round(rate),
                        "limit_seqs_per_s_at_40_tokens": round(limit),
                        "share_of_peak": round(rate / limit, 3),
                    }
                    progress(row)
                    rows.append(row)
            del model
            torch.cuda.empty_cache()
    return rows


def progress(row: dict[str, Any]) -> None:
    print(json.dumps(row), file=sys.stderr, flush=True)


def random_model_dir(out: Path) -> Path:
    """A MiniLM-L6-sized FinMon export with random weights and the packaged tokenizer."""
    from transformers import AutoTokenizer

    from monitor.classify.base import resolve_base_model
    from monitor.classify.model import ModelMeta, MultiTaskModel, default_labels, save_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model())
    cfg = BertConfig(vocab_size=tokenizer.vocab_size, **SIZES["minilm-l6"])
    meta = ModelMeta(labels=default_labels(("a", "b", "c")), max_length_tokens=128)
    return save_model(MultiTaskModel(BertModel(cfg), meta).eval(), tokenizer, out)


def headlines(n: int) -> list[str]:
    from monitor.demo.generator import NewsGenerator

    gen = NewsGenerator(seed=3)
    return [f"{gen.item().headline}. {gen.item().headline}" for _ in range(n)]


def bench_tokenise_and_engine(args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    from monitor.classify.engine import TorchClassifier
    from monitor.classify.model import load_model

    texts = headlines(args.n)
    _, tokenizer = load_model(model_dir)
    started = time.perf_counter()
    tokenizer(texts, add_special_tokens=False)
    tokenise_rate = args.n / (time.perf_counter() - started)
    out: dict[str, Any] = {"tokenise_texts_per_s_cpu": round(tokenise_rate)}
    for items in args.batches:
        clf = TorchClassifier.from_dir(
            model_dir, device=args.device, max_batch_items=items, max_batch_tokens=items * 64
        )
        clf.predict(texts[:64])
        started = time.perf_counter()
        for start in range(0, len(texts), 4096):
            clf.predict(texts[start : start + 4096])
        out[f"engine_minilm_texts_per_s_batch_{items}"] = round(
            len(texts) / (time.perf_counter() - started)
        )
    progress(out)
    return out


def bench_e2e(args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    """The classify role on the embedded broker against the engine alone, GPU-sized batches."""
    from monitor.classify.bench_e2e import E2EPlan, run_e2e_bench

    batch = max(args.batches)
    overrides = {
        "model": {
            "max_batch_items": batch,
            "max_batch_tokens": batch * 64,
            "max_queue_items": 4 * batch,
        },
        "kafka": {"max_poll_records": batch},
    }
    plan = E2EPlan(
        n=args.e2e_n,
        latency_sec=args.latency_sec,
        device=args.device,
        settings_overrides=overrides,
        phase_timeout_sec=120.0,
    )
    result = run_e2e_bench(model_dir, plan=plan, shared_data=None)
    keep = (
        *("e2e_items_per_s", "engine_texts_per_s", "e2e_vs_engine", "p50_latency_ms"),
        *("p99_latency_ms", "all_ids_scored", "max_batch_items", "crc32c"),
    )
    summary = {k: result[k] for k in keep}
    summary["stages"] = result["runs"][-1]["e2e"]
    progress({"e2e": summary})
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--n", type=int, default=16384, help="sequences per timed pass")
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per row")
    parser.add_argument("--peak-tflops", type=float, default=790.0)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--e2e-n", type=int, default=40000, help="items through the Kafka path")
    parser.add_argument("--latency-sec", type=float, default=5.0, help="seconds fed at half rate")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device: pass --device cpu to check the CPU path")
    summary: dict[str, Any] = {"device": args.device, "torch": torch.__version__}
    started = time.perf_counter()
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        summary["gpu"] = torch.cuda.get_device_name()
        summary["forward"] = bench_sizes(args)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = random_model_dir(Path(tmp))
        summary["engine"] = bench_tokenise_and_engine(args, model_dir)
        summary["e2e"] = bench_e2e(args, model_dir)
    summary["wall_sec"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
