"""CTC decoding on hand-made score matrices: greedy and grammar-constrained."""

from __future__ import annotations

import numpy as np

from edge_asr.asr.decoding import TokenGraph, constrained, greedy
from edge_asr.asr.grammar import WordGraph, parse_sentences
from edge_asr.asr.tokens import TokenTable

TABLE = TokenTable.for_words(["turn", "on", "off", "the", "light", "fan"])


def scores(*frames: str | None, sharp: float = 0.9) -> np.ndarray:
    """Log-probs with one likely symbol per frame (None: blank)."""
    v = len(TABLE)
    rest = (1 - sharp) / (v - 1)
    out = np.full((len(frames), v), np.log(rest), dtype=np.float32)
    for t, sym in enumerate(frames):
        idx = TABLE.blank_id if sym is None else TABLE.id_of(sym)
        assert idx is not None
        out[t, idx] = np.log(sharp)
    return out


def w(word: str) -> str:
    return "\u2581" + word


def test_greedy_collapses_repeats_and_drops_blanks() -> None:
    lp = scores(None, w("turn"), w("turn"), None, w("on"), None, w("on"), None)
    hyp = greedy(lp, TABLE.blank_id)
    assert TABLE.decode(hyp.token_ids) == "turn on on"
    assert hyp.frames == (1, 4, 6)


def test_greedy_of_nothing_is_empty() -> None:
    hyp = greedy(np.zeros((0, len(TABLE)), np.float32), TABLE.blank_id)
    assert hyp.token_ids == ()


def test_constrained_decoding_follows_the_grammar() -> None:
    graph = TokenGraph(parse_sentences("turn (on | off) the (light | fan)"), TABLE)
    # "off" is a bit more likely than "on" at frame 3, but "the" is missing in the audio:
    lp = scores(None, w("turn"), None, w("off"), None, None, w("light"), None)
    hyp = constrained(lp, TABLE.blank_id, graph)
    assert hyp.words == ("turn", "off", "the", "light")
    assert hyp.complete


def test_vocabulary_decoding_keeps_out_of_vocabulary_spellings_out() -> None:
    graph = TokenGraph(WordGraph.any_of(["turn", "on", "light"]), TABLE)
    lp = scores(None, w("turn"), None, "\u2581", "f", "a", "n", None, w("on"))
    hyp = constrained(lp, TABLE.blank_id, graph)
    assert hyp.words is not None
    assert set(hyp.words) <= {"turn", "on", "light"}
    assert hyp.words[0] == "turn" and hyp.words[-1] == "on"


def test_words_outside_the_table_are_spelled_in_letters() -> None:
    graph = TokenGraph(parse_sentences("turn on the lamp"), TABLE)
    frames: list[str | None] = [None, w("turn"), w("on"), w("the"), "\u2581"]
    frames += ["l", "a", "m", "p", None]
    hyp = constrained(scores(*frames), TABLE.blank_id, graph)
    assert hyp.words == ("turn", "on", "the", "lamp")


def test_repeated_token_needs_a_blank_between() -> None:
    graph = TokenGraph(WordGraph.any_of(["on"]), TABLE)
    one = constrained(scores(w("on"), w("on"), w("on")), TABLE.blank_id, graph)
    two = constrained(scores(w("on"), None, w("on")), TABLE.blank_id, graph)
    assert one.words == ("on",)
    assert two.words == ("on", "on")


def test_falls_back_to_complete_words_when_no_sentence_ends() -> None:
    graph = TokenGraph(parse_sentences("turn on the light"), TABLE)
    # So sure of blank at the end that no token may be forced in there:
    lp = scores(None, w("turn"), None, w("on"), None, None, sharp=0.999999)
    hyp = constrained(lp, TABLE.blank_id, graph)
    assert hyp.words == ("turn", "on")
    assert not hyp.complete
    assert len(hyp.token_ids) == 2


def test_greedy_shortcut_gives_what_the_search_gives() -> None:
    graph = TokenGraph(WordGraph.any_of(["turn", "on", "off", "the", "light"]), TABLE)
    rng = np.random.default_rng(0)
    words = ["turn", "on", "off", "the", "light"]
    for _ in range(50):
        frames: list[str | None] = []
        for word in rng.choice(words, size=rng.integers(1, 5)):
            frames += [None] * int(rng.integers(0, 3)) + [w(str(word))] * int(rng.integers(1, 3))
        lp = scores(*frames, None, sharp=float(rng.uniform(0.5, 0.99)))
        fast = constrained(lp, TABLE.blank_id, graph)
        slow = constrained(lp, TABLE.blank_id, graph, shortcut=False)
        assert fast.words == slow.words
        assert fast.token_ids == slow.token_ids
        assert abs(fast.score - slow.score) < 1e-3


def test_shortcut_is_not_taken_when_greedy_leaves_the_grammar() -> None:
    graph = TokenGraph(parse_sentences("turn (on | off) the light"), TABLE)
    lp = scores(None, w("turn"), None, w("off"), None, w("light"), None)  # "the" missing
    assert constrained(lp, TABLE.blank_id, graph).words == ("turn", "off", "the", "light")
