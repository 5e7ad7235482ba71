"""The acoustic model's BiLSTM is exact on padded batches, in torch and in its ONNX export,
at 40 ms frames and with ``time_reduction`` 2 (80 ms)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the [train] extra")
ort = pytest.importorskip("onnxruntime")

from edge_asr.training.export import export_onnx  # noqa: E402
from edge_asr.training.model import CtcModel, ModelConfig, reverse_valid  # noqa: E402

LENGTHS = (161, 97, 40)
# Odd and even output frame counts (T + 3) // 4 = 9, 8, 3, 1: the 80 ms LSTM's last frame
# covers one output frame or two.
REDUCTION_LENGTHS = (33, 29, 10, 2)


def small_model(time_reduction: int = 1) -> CtcModel:
    torch.manual_seed(3)
    config = ModelConfig(12, conv_channels=4, hidden=16, time_reduction=time_reduction)
    return CtcModel(config).eval()


def padded_batch(
    lengths: tuple[int, ...] = LENGTHS,
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    utts = [torch.randn(1, n, 80, generator=gen) for n in lengths]
    x = torch.full((len(utts), max(lengths), 80), 7.0)  # padding that is nothing like speech
    for i, u in enumerate(utts):
        x[i, : u.shape[1]] = u[0]
    return utts, x, torch.tensor(lengths, dtype=torch.int64)


def test_reverse_valid_reverses_within_each_length_only() -> None:
    x = torch.arange(10, dtype=torch.float32).reshape(2, 5, 1)
    out = reverse_valid(x, torch.tensor([5, 3]))
    assert out[0, :, 0].tolist() == [4, 3, 2, 1, 0]
    assert out[1, :, 0].tolist() == [7, 6, 5, 8, 9]
    assert torch.equal(reverse_valid(out, torch.tensor([5, 3])), x)


@pytest.mark.parametrize(
    ("time_reduction", "lengths"), [(1, LENGTHS), (2, LENGTHS), (2, REDUCTION_LENGTHS)]
)
def test_a_padded_batch_scores_every_utterance_as_if_it_were_alone(
    time_reduction: int, lengths: tuple[int, ...]
) -> None:
    model = small_model(time_reduction)
    utts, x, lens = padded_batch(lengths)
    with torch.no_grad():
        batch, out_lens = model(x, lens)
        for i, u in enumerate(utts):
            alone, alone_len = model(u, lens[i : i + 1])
            assert int(out_lens[i]) == int(alone_len[0]) == alone.shape[1] == (lengths[i] + 3) // 4
            assert torch.allclose(batch[i, : alone.shape[1]], alone[0], atol=1e-5)


def test_with_time_reduction_the_two_outputs_of_one_lstm_frame_differ() -> None:
    """The 40 ms skip lets the output layer place a token on either frame of a pair."""
    utts, _, lens = padded_batch()
    with torch.no_grad():
        scores, _ = small_model(2)(utts[0], lens[:1])
    assert not torch.allclose(scores[0, 0::2][:20], scores[0, 1::2][:20], atol=1e-3)


def test_a_time_reduction_other_than_1_or_2_is_refused() -> None:
    with pytest.raises(ValueError, match="time_reduction must be 1 or 2, not 3"):
        small_model(3)


def assert_onnx_batch_matches_each_alone(
    model: CtcModel, folder: Path, lengths: tuple[int, ...] = LENGTHS
) -> None:
    """The exported model on a padded batch scores every utterance as torch does alone."""
    utts, x, lens = padded_batch(lengths)
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


def test_the_onnx_export_with_time_reduction_is_exact_at_any_length(tmp_path: Path) -> None:
    assert_onnx_batch_matches_each_alone(small_model(2), tmp_path, REDUCTION_LENGTHS)


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
