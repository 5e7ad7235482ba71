"""The CTC acoustic model: in-model CMVN -> conv subsampling x4 -> LayerNorm -> BiLSTM -> linear.

With ``time_reduction`` 2 the BiLSTM runs at half that rate (80 ms): a stride-2 convolution
before it, and each of its outputs read twice, beside the 40 ms frame it covers, by the
output layer. Outputs keep sherpa-onnx's 40 ms frames. A training update takes ~0.75x the
time (``make bench``, training section); the int8 model's run time is about the same.

Its ONNX form follows sherpa-onnx's Zipformer2-CTC contract: inputs ``x`` (N, T, 80) float32
and ``x_lens`` (N,) int64; outputs ``log_probs`` (N, T', V) and ``log_probs_len`` (N,) int64,
with T' = (T + 3) // 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edge_asr.asr.features import FEATURE_DIM

SUBSAMPLING = 4
HIDDEN = 192  # LSTM units per direction of the built-in model's recipe


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    conv_channels: int = 32
    hidden: int = HIDDEN
    layers: int = 2
    dropout: float = 0.1
    # Subtract each utterance's own mean feature (after the global CMVN): removes a fixed
    # channel colouring (microphone, telephone line, a synthesizer's spectral tilt).
    utterance_cmn: bool = False
    # The BiLSTM's frames per output frame: 1 (40 ms, models up to 1.5.0) or 2 (80 ms).
    time_reduction: int = 1
    # Phonemes (blank included) of a training-only CTC head on the first BiLSTM layer; 0: none.
    # The head is not part of forward(), so the exported model never has it.
    phone_vocab: int = 0


def output_lengths(x_lens: torch.Tensor) -> torch.Tensor:
    """Frames after two stride-2 convolutions with padding 1: ceil(ceil(T / 2) / 2)."""
    return torch.div(x_lens + 3, SUBSAMPLING, rounding_mode="floor")


def _time_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """(N, t) 1.0 for valid frames, 0.0 for padding."""
    steps = torch.arange(t, device=lengths.device).unsqueeze(0)
    return (steps < lengths.unsqueeze(1)).to(torch.float32)


def reverse_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of (N, T, D) within its own length; padding frames stay in place."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    last = lengths.unsqueeze(1) - 1
    index = torch.where(steps <= last, last - steps, steps)
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class BiLstm(nn.Module):
    """A stacked bidirectional LSTM that is exact on padded batches, without packing.

    Each direction is its own one-layer LSTM; the backward one reads every sequence reversed
    within its length, so padding only ever follows the valid frames, and a padded batch gives
    the same outputs as each utterance alone. Packed sequences give that too but made training
    2-2.5x slower on CPU.
    """

    def __init__(self, size: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        sizes = [size] + [2 * hidden] * (layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(n, hidden, batch_first=True) for n in sizes)
        self.backward_layers = nn.ModuleList(nn.LSTM(n, hidden, batch_first=True) for n in sizes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last layer's outputs and the first layer's."""
        first = x
        for i, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers, strict=True)):
            if i > 0:
                x = self.dropout(x)
            ahead, _ = fwd(x)
            behind, _ = bwd(reverse_valid(x, lengths))
            x = torch.cat([ahead, reverse_valid(behind, lengths)], dim=-1)
            if i == 0:
                first = x
        return x, first


class CtcModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config.conv_channels
        self.register_buffer("cmvn_mean", torch.zeros(FEATURE_DIM))
        self.register_buffer("cmvn_inv_std", torch.ones(FEATURE_DIM))
        self.conv1 = nn.Conv2d(1, c, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, stride=2, padding=1)
        freq = (((FEATURE_DIM + 1) // 2) + 1) // 2
        self.proj = nn.Linear(c * freq, config.hidden)
        self.norm = nn.LayerNorm(config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        h = config.hidden
        if config.time_reduction not in (1, 2):
            raise ValueError(f"time_reduction must be 1 or 2, not {config.time_reduction}")
        if config.time_reduction == 2:
            self.reduce = nn.Conv1d(h, h, 3, stride=2, padding=1)
        self.lstm = BiLstm(h, h, config.layers, config.dropout)
        skip = h if config.time_reduction == 2 else 0
        self.out = nn.Linear(2 * h + skip, config.vocab_size)
        if config.phone_vocab:
            if config.time_reduction != 1 or config.layers < 2:
                raise ValueError("the phoneme head needs time_reduction 1 and 2+ LSTM layers")
            self.phone_out = nn.Linear(2 * h, config.phone_vocab)

    def set_cmvn(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.cmvn_mean.copy_(torch.from_numpy(mean))
        self.cmvn_inv_std.copy_(torch.from_numpy(1.0 / std))

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, T, 80) features and (N,) lengths -> (N, T', V) log-probs and (N,) lengths."""
        top, _, out_lens = self.encode(x, x_lens)
        return torch.log_softmax(self.out(self.dropout(top)), dim=-1), out_lens

    def forward_with_phones(
        self, x: torch.Tensor, x_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training: word log-probs, phoneme log-probs (N, T', P) and the (N,) lengths."""
        top, first, out_lens = self.encode(x, x_lens)
        words = torch.log_softmax(self.out(self.dropout(top)), dim=-1)
        return words, torch.log_softmax(self.phone_out(self.dropout(first)), dim=-1), out_lens

    def encode(
        self, x: torch.Tensor, x_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The outputs of the BiLSTM's last and first layers, and their lengths."""
        x = (x - self.cmvn_mean) * self.cmvn_inv_std
        valid = _time_mask(x_lens, x.shape[1]).unsqueeze(-1)
        if self.config.utterance_cmn:
            frames = x_lens.clamp(min=1).to(x.dtype).view(-1, 1, 1)
            x = x - (x * valid).sum(dim=1, keepdim=True) / frames
        x = x * valid
        x = torch.relu(self.conv1(x.unsqueeze(1)))  # (N, C, T/2, 40)
        half_lens = torch.div(x_lens + 1, 2, rounding_mode="floor")
        x = x * _time_mask(half_lens, x.shape[2]).unsqueeze(1).unsqueeze(-1)
        x = torch.relu(self.conv2(x))  # (N, C, T/4, 20)
        n, c, t, f = x.shape
        x = x.permute(0, 2, 1, 3).reshape(n, t, c * f)
        x = self.dropout(self.norm(self.proj(x)))
        out_lens = output_lengths(x_lens)
        if self.config.time_reduction == 2:
            x = x * _time_mask(out_lens, x.shape[1]).unsqueeze(-1)
            slow = torch.relu(self.reduce(x.transpose(1, 2))).transpose(1, 2)
            slow, _ = self.lstm(slow, torch.div(out_lens + 1, 2, rounding_mode="floor"))
            # each 80 ms output twice, cut to the 40 ms frames, beside the frame it covers
            slow = slow.unsqueeze(2).expand(-1, -1, 2, -1).flatten(1, 2)[:, : x.shape[1]]
            return torch.cat([slow, x], dim=-1), slow, out_lens
        top, first = self.lstm(x, out_lens)
        return top, first, out_lens


def count_parameters(model: nn.Module) -> int:
    """Parameters of the exported model (a training-only phoneme head is not counted)."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("phone_out."))
