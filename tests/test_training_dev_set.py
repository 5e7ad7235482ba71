"""The training progress log's dev set mixes the held-out engines from its first utterance."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs the [train] extra")

from edge_asr.training.data import FeatureSet  # noqa: E402
from edge_asr.training.pipeline import _dev_set  # noqa: E402


def fake_set(engine: str, n: int) -> FeatureSet:
    lens = np.arange(1, n + 1) * 3
    feats = np.full((int(lens.sum()), 80), 0.5, np.float16)
    items = [
        {"text": f"{engine} {i}", "engine": engine, "voice": "v", "group": engine} for i in range(n)
    ]
    return FeatureSet(feats, np.array([0, *lens], np.int64).cumsum(), items)


def test_dev_set_interleaves_every_other_utterance_of_both_engines() -> None:
    dev = _dev_set({"espeak_heldout": fake_set("espeak", 6), "flite_heldout": fake_set("flite", 4)})
    assert [it["text"] for it in dev.items] == [
        "espeak 0", "flite 0", "espeak 2", "flite 2", "espeak 4",
    ]  # fmt: skip
    # features travel with their items
    assert [len(dev.features(i)) for i in range(len(dev))] == [3, 3, 9, 9, 15]
