"""Greedy CTC decoding (free and vocabulary-constrained) and word error rate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_asr.asr.tokens import TokenTable


def collapse(ids: Sequence[int], blank_id: int) -> list[int]:
    """Drop repeats, then blanks: the CTC greedy path to a token sequence."""
    out: list[int] = []
    prev = -1
    for i in ids:
        if i != prev and i != blank_id:
            out.append(int(i))
        prev = i
    return out


def letter_mask(table: TokenTable) -> np.ndarray:
    """Boolean (V,) True for tokens that are not whole words or blank (``▁`` and letters)."""
    words = {"\u2581" + w for w in table.words}
    return np.array([i != table.blank_id and s not in words for i, s in enumerate(table.symbols)])


def greedy(
    log_probs: np.ndarray, table: TokenTable, constrained_mask: np.ndarray | None = None
) -> str:
    """Text of (T, V) log-probs; with a mask, masked tokens can never be emitted."""
    if constrained_mask is not None:
        log_probs = np.where(constrained_mask, -np.inf, log_probs)
    return table.decode(collapse(log_probs.argmax(axis=-1).tolist(), table.blank_id))
