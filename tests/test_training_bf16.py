"""--bf16: forward and backward in bfloat16, everything kept and exported in float32."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs the [train] extra")

from test_training_average import (  # noqa: E402
    SHIPPED,
    WORDS,
    params,
    tiny_config,
    tiny_model,
    tiny_set,
)

from edge_asr.asr.tokens import TokenTable  # noqa: E402
from edge_asr.training import card  # noqa: E402
from edge_asr.training.pipeline import full_config  # noqa: E402
from edge_asr.training.train import native_bf16, train  # noqa: E402

X86_FLAGS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f {extra}\nbugs\t\t: sysret_ss_attrs\n"
ARM_FEATURES = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes {extra} cpuid\n"


@pytest.mark.timeout(120)
def test_bf16_training_trains_other_weights_and_keeps_them_float32(tmp_path: Path) -> None:
    table = TokenTable.for_words(WORDS)
    data = tiny_set()
    before = params(tiny_model(table))
    runs = {}
    for bf16 in (False, True):
        model = tiny_model(table)
        cfg = tiny_config(average_last=0.0, bf16=bf16)
        result = train(model, data, data, table, cfg, tmp_path / f"{bf16}.pt")
        assert result.steps == 10
        assert result.final_loss == result.final_loss and result.final_loss > 0  # not NaN
        runs[bf16] = params(model)
    for key, value in runs[True].items():
        assert value.dtype == before[key].dtype, key  # the weights stay float32
    trained = [k for k in before if not k.startswith("cmvn_") and before[k].is_floating_point()]
    assert all(not torch.equal(runs[True][k], before[k]) for k in trained)
    # bfloat16 arithmetic rounds differently: the same seed ends on other weights
    assert any(not torch.equal(runs[True][k], runs[False][k]) for k in trained)
    saved = torch.load(tmp_path / "True.pt", weights_only=False)["model"]
    assert all(v.dtype != torch.bfloat16 for v in saved.values())


@pytest.mark.parametrize(
    ("cpuinfo", "native"),
    [
        (X86_FLAGS.format(extra="avx512_bf16 avx512_vnni"), True),
        (X86_FLAGS.format(extra="amx_bf16 amx_tile"), True),
        (X86_FLAGS.format(extra="avx512_vnni"), False),
        (ARM_FEATURES.format(extra="bf16 i8mm"), True),
        (ARM_FEATURES.format(extra="asimddp"), False),
    ],
)
def test_native_bf16_reads_the_cpu_flags(tmp_path: Path, cpuinfo: str, native: bool) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert native_bf16(path) is native


def test_native_bf16_without_cpuinfo_is_false(tmp_path: Path) -> None:
    assert native_bf16(tmp_path / "missing") is False


@pytest.mark.timeout(120)
def test_bf16_on_a_cpu_without_it_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge_asr.training.train as train_module

    table = TokenTable.for_words(WORDS)
    data = tiny_set()
    monkeypatch.setattr(train_module, "native_bf16", lambda: False)
    cfg = tiny_config(average_last=0.0, steps=2, bf16=True)
    with caplog.at_level(logging.WARNING, logger="edge_asr.training.train"):
        train(tiny_model(table), data, data, table, cfg, tmp_path / "a.pt")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "--bf16: this CPU has no native bfloat16 (AVX512-BF16, AMX or BF16): slower"
    ]


def test_bf16_is_its_own_recipe_and_the_card_says_so() -> None:
    cfg = full_config(0, 95.0, festival_variety=True, piper=6000, bf16=True)
    plain = full_config(0, 95.0, festival_variety=True, piper=6000)
    assert cfg.name == "full-fv-pip6000-bf16"  # its own checkpoints
    assert cfg.train.bf16 and not plain.train.bf16
    assert cfg.data == plain.data  # the same data

    metrics = json.loads(SHIPPED.read_text(encoding="utf-8"))
    tr = metrics["training"]
    tr.pop("bf16", None)  # metrics from before the flag: float32
    text = card.render(metrics)
    assert "--bf16" not in text and "bfloat16" not in text
    tr["bf16"] = True
    text = card.render(metrics)
    assert text.split("## Reproduce", 1)[1].count(" --bf16") == 1
    assert "Forward and backward passes in bfloat16 (torch autocast, `--bf16`)" in text
