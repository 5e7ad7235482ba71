"""CTC decoding: greedy, and constrained to a word graph (a word list or a sentences file).

Constrained decoding is a Viterbi beam search over the CTC topology composed with the word
graph spelled out in tokens. Where no hypothesis ends on a complete sentence it falls back to
the best hypothesis's complete words, never to an empty string.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_asr.asr.grammar import WordGraph
from edge_asr.asr.tokens import TokenTable


@dataclass(frozen=True)
class Hypothesis:
    """A decoded path: token ids with the output frame each was first emitted on."""

    token_ids: tuple[int, ...]
    frames: tuple[int, ...]
    words: tuple[str, ...] | None  # None for greedy decoding (text comes from tokens)
    score: float  # total log probability of the path
    intent: str | None = None
    complete: bool = True  # False when the fallback returned a partial sentence


def greedy(log_probs: np.ndarray, blank_id: int) -> Hypothesis:
    """Best token per frame, repeats collapsed, blanks dropped. ``log_probs`` is (T, V)."""
    if log_probs.shape[0] == 0:
        return Hypothesis((), (), None, 0.0)
    best = log_probs.argmax(axis=1)
    score = float(log_probs[np.arange(len(best)), best].sum())
    keep = (best != blank_id) & np.concatenate(([True], best[1:] != best[:-1]))
    frames = np.nonzero(keep)[0]
    return Hypothesis(
        tuple(int(i) for i in best[frames]), tuple(int(f) for f in frames), None, score
    )


@dataclass(frozen=True)
class _Node:
    tokens: np.ndarray  # int64 token id per outgoing arc
    targets: np.ndarray  # int64 destination node per arc
    labels: tuple[str | None, ...]  # word completed by the arc, if any
    final: bool
    intent: str | None


class TokenGraph:
    """A word graph spelled out in the tokens of one model, epsilons removed."""

    def __init__(self, graph: WordGraph, table: TokenTable) -> None:
        self.table = table
        arcs: list[list[tuple[int, int, str | None]]] = [[] for _ in graph.arcs]
        for src, word_arcs in enumerate(graph.arcs):
            for word, dst in word_arcs:
                if word is None:
                    continue
                ids = table.encode_word(word)  # ValueError names a word the model can't spell
                state = src
                for i, tok in enumerate(ids):
                    last = i == len(ids) - 1
                    nxt = dst if last else len(arcs)
                    if not last:
                        arcs.append([])
                    arcs[state].append((tok, nxt, word if last else None))
                    state = nxt
        self.nodes: list[_Node] = []
        for node in range(len(arcs)):
            # Word-graph states may have epsilon arcs; spelled-out states have none.
            closure = graph.closure(node) if node < len(graph.arcs) else {node}
            merged = [arc for s in sorted(closure) for arc in arcs[s]]
            finals = [s for s in sorted(closure) if s in graph.finals]
            self.nodes.append(
                _Node(
                    np.array([a[0] for a in merged], dtype=np.int64),
                    np.array([a[1] for a in merged], dtype=np.int64),
                    tuple(a[2] for a in merged),
                    bool(finals),
                    graph.finals[finals[0]] if finals else None,
                )
            )

    def words_of(self, token_ids: tuple[int, ...]) -> list[str]:
        return self.table.decode(token_ids).split()

    def complete_path(self, token_ids: tuple[int, ...]) -> tuple[bool, str | None]:
        """Whether ``token_ids`` spell a complete sentence, and that sentence's intent."""
        current = {0}
        for tok in token_ids:
            current = {
                int(node.targets[i])
                for node in (self.nodes[n] for n in current)
                for i in np.nonzero(node.tokens == tok)[0]
            }
            if not current:
                return False, None
        finals = [n for n in sorted(current) if self.nodes[n].final]
        return (True, self.nodes[finals[0]].intent) if finals else (False, None)


@dataclass
class _Path:
    score: float
    token_ids: tuple[int, ...]
    frames: tuple[int, ...]
    words: tuple[str, ...]
    complete_tokens: int = 0  # leading tokens that spell ``words``


def constrained(
    log_probs: np.ndarray,
    blank_id: int,
    graph: TokenGraph,
    beam: int = 12,
    beam_delta: float = 12.0,
    token_floor: float = -15.0,
    shortcut: bool = True,
) -> Hypothesis:
    """Best path through ``graph`` for (T, V) ``log_probs``.

    ``beam`` bounds the live hypotheses, ``beam_delta`` drops those far behind the best,
    and tokens scoring below ``token_floor`` on a frame are not entered on it. ``shortcut``
    returns the greedy path at once when the graph allows it (exact, see below).
    """
    # The greedy path is the best of all paths: when the grammar allows it, it is the answer,
    # and the search is not needed (the common case for a model trained on the grammar's words).
    free = greedy(log_probs, blank_id)
    allowed, intent = graph.complete_path(free.token_ids) if shortcut else (False, None)
    if allowed:
        words = tuple(graph.words_of(free.token_ids))
        return Hypothesis(free.token_ids, free.frames, words, free.score, intent)
    # State: (node, last token or blank). Paths merge Viterbi-style on equal states.
    live: dict[tuple[int, int], _Path] = {(0, blank_id): _Path(0.0, (), (), (), 0)}
    for t in range(log_probs.shape[0]):
        lp = log_probs[t]
        nxt: dict[tuple[int, int], _Path] = {}
        offer = _offerer(nxt)
        for (node, last), path in live.items():
            offer((node, blank_id), _replace_score(path, path.score + float(lp[blank_id])))
            if last != blank_id:
                offer((node, last), _replace_score(path, path.score + float(lp[last])))
            arcs = graph.nodes[node]
            if arcs.tokens.size == 0:
                continue
            scores = lp[arcs.tokens]
            for i in np.nonzero(scores > token_floor)[0]:
                tok = int(arcs.tokens[i])
                if tok == last:  # CTC needs a blank between two equal tokens
                    continue
                label = arcs.labels[i]
                token_ids = (*path.token_ids, tok)
                offer(
                    (int(arcs.targets[i]), tok),
                    _Path(
                        path.score + float(scores[i]),
                        token_ids,
                        (*path.frames, t),
                        (*path.words, label) if label else path.words,
                        len(token_ids) if label else path.complete_tokens,
                    ),
                )
        best = max(p.score for p in nxt.values())
        ranked = sorted(nxt.items(), key=lambda kv: kv[1].score, reverse=True)
        live = dict(kv for kv in ranked[:beam] if kv[1].score >= best - beam_delta)

    finals = [(k, p) for k, p in live.items() if graph.nodes[k[0]].final]
    if finals:
        (node, _), path = max(finals, key=lambda kv: kv[1].score)
        return Hypothesis(
            path.token_ids, path.frames, path.words, path.score, graph.nodes[node].intent
        )
    # No complete sentence: keep the best path's complete words only.
    path = max(live.values(), key=lambda p: p.score)
    n_tokens = path.complete_tokens
    return Hypothesis(
        path.token_ids[:n_tokens], path.frames[:n_tokens], path.words, path.score, None, False
    )


def _offerer(paths: dict[tuple[int, int], _Path]) -> Callable[[tuple[int, int], _Path], None]:
    """Return a function that keeps the better of two paths reaching the same state."""

    def offer(key: tuple[int, int], path: _Path) -> None:
        old = paths.get(key)
        if old is None or path.score > old.score:
            paths[key] = path

    return offer


def _replace_score(path: _Path, score: float) -> _Path:
    return _Path(score, path.token_ids, path.frames, path.words, path.complete_tokens)
