"""The evaluation sets are the same audio for every training seed."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="needs the [train] extra")

from edge_asr.training import data, synth  # noqa: E402
from edge_asr.training.pipeline import full_config  # noqa: E402
from edge_asr.training.text import SentenceGenerator, load_vocabulary  # noqa: E402


def test_every_training_seed_is_scored_on_the_same_sets_and_trains_on_none_of_them() -> None:
    gen = SentenceGenerator(load_vocabulary())
    plan = full_config(0, 78.0, festival_variety=True).data
    sets = data.plan_eval(plan, gen)
    assert sets == data.plan_eval(plan, gen)  # fixed, not drawn anew
    texts = {g: {u.text for u, _ in utts} for g, utts in sets.items()}
    assert len(texts["flite_heldout"]) > 50 and len(texts["espeak_heldout"]) > 50
    held = {u.voice for u, _ in sets.get("asterisk_heldout", [])}
    for seed in (0, 1, 2):
        train = data.plan_train(plan, gen, seed)
        trained = {u.voice for u, _ in train if u.engine == "asterisk"}
        assert not trained & held, seed  # held-out real prompts never trained on, any seed
        if seed:
            espeak = [u.text for u, _ in train if u.engine == "espeak"]
            assert espeak != [
                u.text for u, _ in data.plan_train(plan, gen, 0) if u.engine == "espeak"
            ]
    if synth.asterisk_prompts():
        assert held and len(held) == len(sets["asterisk_heldout"])
