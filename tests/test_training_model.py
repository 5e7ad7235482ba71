"""The acoustic model's BiLSTM is exact on padded batches, in torch and in its ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the [train] extra")
ort = pytest.importorskip("onnxruntime")

from edge_asr.training.export import export_onnx  # noqa: E402
from edge_asr.training.model import CtcModel, ModelConfig, reverse_valid  # noqa: E402

LENGTHS = (161, 97, 40)


def small_model() -> CtcModel:
    torch.manual_seed(3)
    return CtcModel(ModelConfig(vocab_size=12, conv_channels=4, hidden=16)).eval()


def padded_batch() -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    utts = [torch.randn(1, n, 80, generator=gen) for n in LENGTHS]
    x = torch.full((len(utts), max(LENGTHS), 80), 7.0)  # padding that is nothing like speech
    for i, u in enumerate(utts):
        x[i, : u.shape[1]] = u[0]
    return utts, x, torch.tensor(LENGTHS, dtype=torch.int64)


def test_reverse_valid_reverses_within_each_length_only() -> None:
    x = torch.arange(10, dtype=torch.float32).reshape(2, 5, 1)
    out = reverse_valid(x, torch.tensor([5, 3]))
    assert out[0, :, 0].tolist() == [4, 3, 2, 1, 0]
    assert out[1, :, 0].tolist() == [7, 6, 5, 8, 9]
    assert torch.equal(reverse_valid(out, torch.tensor([5, 3])), x)


def test_a_padded_batch_scores_every_utterance_as_if_it_were_alone() -> None:
    model = small_model()
    utts, x, lens = padded_batch()
    with torch.no_grad():
        batch, out_lens = model(x, lens)
        for i, u in enumerate(utts):
            alone, alone_len = model(u, lens[i : i + 1])
            assert int(out_lens[i]) == int(alone_len[0]) == alone.shape[1]
            assert torch.allclose(batch[i, : alone.shape[1]], alone[0], atol=1e-5)


def assert_onnx_batch_matches_each_alone(model: CtcModel, folder: Path) -> None:
    """The exported model on a padded batch scores every utterance as torch does alone."""
    utts, x, lens = padded_batch()
    path = folder / "model.onnx"
    export_onnx(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scores, out_lens = session.run(None, {"x": x.numpy(), "x_lens": lens.numpy()})
    with torch.no_grad():
        for i, u in enumerate(utts):
            alone = model(u, lens[i : i + 1])[0][0].numpy()
            assert int(out_lens[i]) == alone.shape[0]
            np.testing.assert_allclose(scores[i, : alone.shape[0]], alone, atol=1e-4)


def test_the_onnx_export_is_exact_on_padded_batches_too(tmp_path: Path) -> None:
    assert_onnx_batch_matches_each_alone(small_model(), tmp_path)


def test_utterance_cmn_ignores_a_constant_channel_colouring(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = CtcModel(ModelConfig(12, conv_channels=4, hidden=16, utterance_cmn=True)).eval()
    _, x, lens = padded_batch()
    tilt = torch.linspace(-2.0, 2.0, 80)  # the same log-power offset in every frame
    coloured = x.clone()
    for i, n in enumerate(LENGTHS):
        coloured[i, :n] += tilt
    with torch.no_grad():
        plain, _ = model(x, lens)
        shifted, _ = model(coloured, lens)
        for i, n in enumerate(LENGTHS):
            frames = (n + 3) // 4
            assert torch.allclose(plain[i, :frames], shifted[i, :frames], atol=1e-4)
    assert_onnx_batch_matches_each_alone(model, tmp_path)


def test_without_utterance_cmn_a_channel_colouring_changes_the_scores() -> None:
    model = small_model()
    _, x, lens = padded_batch()
    with torch.no_grad():
        plain, _ = model(x, lens)
        shifted, _ = model(x + torch.linspace(-2.0, 2.0, 80), lens)
    assert not torch.allclose(plain[0], shifted[0], atol=1e-3)
