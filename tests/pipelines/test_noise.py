from __future__ import annotations

import random

from pipelines.noise import NoisePolicy, add_noise, noisy_copies, typo


def test_noise_is_seeded_and_changes_text() -> None:
    texts = ["Shares of Tesla plunge after earnings miss expectations"] * 20
    first, second = noisy_copies(texts, seed=3), noisy_copies(texts, seed=3)
    assert first == second
    assert sum(t != texts[0] for t in first) >= 15


def test_typo_keeps_first_letter_and_is_one_edit() -> None:
    rng = random.Random(0)
    for _ in range(50):
        out = typo("earnings", rng)
        assert out[0] == "e" and abs(len(out) - len("earnings")) <= 1


def test_no_typos_no_casing_is_identity() -> None:
    policy = NoisePolicy(word_typo_rate=0.0, casing=False)
    assert add_noise("Fed holds rates", random.Random(1), policy) == "Fed holds rates"
