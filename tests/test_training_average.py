"""--average-last: the model is the mean of its weights over the end of training."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the [train] extra")

from edge_asr.asr.tokens import TokenTable  # noqa: E402
from edge_asr.training import card  # noqa: E402
from edge_asr.training.data import FeatureSet  # noqa: E402
from edge_asr.training.model import CtcModel, ModelConfig  # noqa: E402
from edge_asr.training.pipeline import full_config  # noqa: E402
from edge_asr.training.train import TrainConfig, WeightAverage, train  # noqa: E402

SHIPPED = Path(__file__).parents[1] / "edge_asr" / "models" / "home-en" / "metrics.json"
WORDS = ["on", "off", "lights"]


def tiny_set(n: int = 12) -> FeatureSet:
    rng = np.random.default_rng(0)
    lens = rng.integers(40, 80, n)
    feats = rng.normal(size=(int(lens.sum()), 80)).astype(np.float16)
    items = [
        {"text": " ".join(WORDS[: 1 + i % 3]), "engine": "e", "voice": "v", "group": "g"}
        for i in range(n)
    ]
    return FeatureSet(feats, np.array([0, *lens], np.int64).cumsum(), items)


def tiny_model(table: TokenTable) -> CtcModel:
    torch.manual_seed(0)
    return CtcModel(ModelConfig(len(table), conv_channels=4, hidden=16))


def tiny_config(**kw: object) -> TrainConfig:
    base = TrainConfig(
        steps=10,
        max_minutes=5.0,
        warmup=2,
        eval_every=1000,
        batch_frames=400,
        threads=1,
        average_last=0.5,
        average_every=2,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_the_average_is_the_mean_of_the_snapshots_and_leaves_other_entries() -> None:
    net = torch.nn.Linear(3, 2)
    net.register_buffer("count", torch.tensor(7))
    snaps = []
    average = WeightAverage()
    for value in (1.0, 2.0, 6.0):
        with torch.no_grad():
            net.weight.fill_(value)
            net.bias.fill_(-value)
        snaps.append(params(net))
        average.add(net)
    assert average.count == 3
    assert "count" not in average.mean  # integers are not averaged
    with torch.no_grad():
        net.count.fill_(9)
    average.apply(net)
    assert torch.allclose(net.weight, torch.full((2, 3), 3.0))
    assert torch.allclose(net.bias, torch.full((2,), -3.0))
    assert int(net.count) == 9


@pytest.mark.timeout(120)
def test_training_ends_on_the_average_and_the_checkpoint_keeps_both(tmp_path: Path) -> None:
    table = TokenTable.for_words(WORDS)
    data, ckpt = tiny_set(), tmp_path / "checkpoint.pt"
    model = tiny_model(table)
    result = train(model, data, data, table, tiny_config(), ckpt)
    # snapshots after updates 6, 8 and 10: the last half of 10 updates, every 2
    assert (result.steps, result.averaged) == (10, 3)
    state = torch.load(ckpt, weights_only=False)
    assert state["average_count"] == 3
    final = params(model)
    for key, mean in state["average"].items():
        assert torch.equal(final[key], mean), key
    # the last weights are kept apart: every trained tensor differs from the mean
    trained = [k for k in state["average"] if not k.startswith("cmvn_")]
    same = [k for k in trained if torch.equal(state["model"][k], final[k])]
    assert trained and not same, same

    # re-running the finished run (export and evaluation only) ends on the same average
    again = tiny_model(table)
    assert train(again, data, data, table, tiny_config(), ckpt).averaged == 3
    for key, value in params(again).items():
        assert torch.equal(value, final[key]), key

    # raising the planned steps starts a new average: the old schedule's snapshots are dropped
    longer = train(tiny_model(table), data, data, table, tiny_config(steps=12), ckpt)
    assert (longer.steps, longer.averaged) == (12, 1)


@pytest.mark.timeout(120)
def test_without_averaging_training_ends_on_its_last_weights(tmp_path: Path) -> None:
    table = TokenTable.for_words(WORDS)
    data, ckpt = tiny_set(), tmp_path / "checkpoint.pt"
    model = tiny_model(table)
    result = train(model, data, data, table, tiny_config(average_last=0.0), ckpt)
    assert result.averaged == 0
    state = torch.load(ckpt, weights_only=False)
    assert state["average_count"] == 0
    for key, value in params(model).items():
        assert torch.equal(value, state["model"][key]), key


def test_averaging_is_its_own_recipe_and_the_card_says_how_it_was_made() -> None:
    cfg = full_config(0, 78.0, festival_variety=True, average_last=0.25)
    assert cfg.name == "full-fv-avg0.25"  # its own checkpoints
    assert cfg.train.average_last == 0.25
    assert cfg.data == full_config(0, 78.0, festival_variety=True).data  # the same data
    assert full_config(0, 78.0).train.average_last == 0.0

    metrics = json.loads(SHIPPED.read_text(encoding="utf-8"))
    tr = metrics["training"]
    tr.update(average_last=0.0, averaged_snapshots=0)
    plain = card.render(metrics)
    assert "--average-last" not in plain and "Weight averaging" not in plain
    tr.update(average_last=0.25, average_every=100, averaged_snapshots=60)
    text = card.render(metrics)
    assert " --average-last 0.25" in text
    assert "the mean of 60 snapshots taken every 100 updates over the last 25% of training" in text


def test_the_averaged_share_must_be_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    from edge_asr.training.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["--out", "unused", "--average-last", "1"])
    assert exit_.value.code == 2
    assert "--average-last must be at least 0 and below 1, not 1" in capsys.readouterr().err


def test_the_card_judges_the_time_budget_only_for_a_two_thread_run() -> None:
    metrics = json.loads(SHIPPED.read_text(encoding="utf-8"))
    tr = metrics["training"]
    tr.update(threads=2, data_minutes=10.0, train_minutes=100.0)
    assert "**over** the budget of ≤ ~90 minutes" in card.render(metrics)
    tr["train_minutes"] = 60.0
    assert "within the budget of ≤ ~90 minutes" in card.render(metrics)
    tr.update(threads=1, train_minutes=100.0)
    text = card.render(metrics)
    assert "with 1 torch thread, so this run does not measure the budget" in text
    assert "**over**" not in text.split("## Goals", 1)[1].split("## Limitations", 1)[0]


@pytest.mark.timeout(120)
def test_training_warns_when_the_budget_will_end_it_before_the_planned_updates(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = TokenTable.for_words(WORDS)
    data = tiny_set()
    cfg = tiny_config(average_last=0.0, steps=12)
    with caplog.at_level(logging.WARNING, logger="edge_asr.training.train"):
        train(tiny_model(table), data, data, table, cfg, tmp_path / "a.pt")
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]  # 12 fit in 5 min

    caplog.clear()
    # a million planned updates do not fit in 3 seconds: said after the first epoch
    cfg = tiny_config(average_last=0.0, steps=1_000_000, max_minutes=0.05)
    with caplog.at_level(logging.WARNING, logger="edge_asr.training.train"):
        result = train(tiny_model(table), data, data, table, cfg, tmp_path / "b.pt")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    m = re.search(
        r"after about (\d+) of the 1000000 planned updates; raise --max-minutes to (\d+)",
        warnings[0],
    )
    assert m, warnings[0]
    assert 0 < int(m.group(1)) < 1_000_000
    # the projection is of the right size: the updates the budget really allowed
    assert 0.05 * result.steps < int(m.group(1)) < 3 * result.steps
    assert int(m.group(2)) > 3


def test_the_card_says_a_slower_machine_needs_a_bigger_budget_to_reproduce() -> None:
    metrics = json.loads(SHIPPED.read_text(encoding="utf-8"))
    tr = metrics["training"]
    tr.update(steps=24000, planned_steps=24000, train_minutes=60.0, max_minutes=78.0)
    text = card.render(metrics).split("## Reproduce", 1)[1]
    assert "This run made all 24,000 updates in 60 minutes (0.15 s each)" in text
    assert "a machine slower than 0.20 s per update trains fewer updates" in text
    tr.update(steps=20000, train_minutes=78.0)  # the budget ended this run: nothing to add
    assert "This run made all" not in card.render(metrics)
