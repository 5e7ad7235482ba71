"""Word error rate: how training, tests and benchmarks score transcripts, one definition."""

from __future__ import annotations

from collections.abc import Sequence


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two word sequences (substitutions, insertions, deletions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def word_errors(ref: str, hyp: str) -> int:
    """Word edits that turn the reference text into the hypothesis."""
    return edit_distance(ref.split(), hyp.split())


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus word error rate in percent (errors / reference words; empty refs count insertions)."""
    errors = sum(word_errors(r, h) for r, h in zip(refs, hyps, strict=True))
    words = sum(len(r.split()) for r in refs)
    return 100.0 * errors / max(words, 1)
