"""Sentences files: parsing, what they accept, and errors that name the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_asr.asr.grammar import WordGraph, load_sentences, parse_sentences
from edge_asr.errors import GrammarError

SENTENCES = """
# home commands
rooms = (kitchen | bedroom | living room)
numbers = (one | two | ten | twenty)

[lights]
turn (on | off) [the] <rooms> (light | lights)

[timer]
set a timer for <numbers> (minute | minutes)   # trailing comment
"""


def test_sentences_accept_every_expansion_and_nothing_else() -> None:
    graph = parse_sentences(SENTENCES)
    assert graph.accepts("turn on the kitchen light".split())
    assert graph.accepts("turn off living room lights".split())
    assert graph.accepts("set a timer for twenty minutes".split())
    assert not graph.accepts("turn on the".split())
    assert not graph.accepts("turn on the garage light".split())
    assert not graph.accepts("set a timer for kitchen minutes".split())
    assert not graph.accepts([])


def test_sections_name_the_intent_of_their_sentences() -> None:
    graph = parse_sentences(SENTENCES)
    intents = set(graph.finals.values())
    assert intents == {"lights", "timer"}


def test_words_are_lower_cased() -> None:
    graph = parse_sentences("Turn ON the Light")
    assert graph.accepts("turn on the light".split())
    assert graph.words == {"turn", "on", "the", "light"}


def test_any_of_accepts_any_sequence_including_none() -> None:
    graph = WordGraph.any_of(["yes", "no"])
    assert graph.accepts([])
    assert graph.accepts("yes no yes".split())
    assert not graph.accepts(["maybe"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("turn (on | off the light", "missing ')'"),
        ("turn [on the light", "missing ']'"),
        ("turn on <room>", "rule <room> is not defined"),
        ("a = x <a>\nsay <a>", "refers to itself"),
        ("turn (on | ) light", "empty alternative"),
        ("set it to 20", "characters other than letters"),
        ("# only a comment", "no sentences"),
        ("turn on ) light", "unexpected ')'"),
    ],
)
def test_bad_sentences_name_the_problem_and_line(text: str, message: str) -> None:
    with pytest.raises(GrammarError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_sentences(text, "sentences.ini")


def test_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "sentences.ini"
    path.write_text("[a]\nturn on the light\nturn (on light\n")
    with pytest.raises(GrammarError, match=r"sentences.ini:3: missing"):
        load_sentences(path)


def test_unreadable_sentences_file_is_a_grammar_error(tmp_path: Path) -> None:
    with pytest.raises(GrammarError, match="cannot read"):
        load_sentences(tmp_path / "missing.ini")
    binary = tmp_path / "binary.ini"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(GrammarError, match="cannot read"):
        load_sentences(binary)


def test_example_sentences_file_uses_only_built_in_words() -> None:
    root = Path(__file__).resolve().parent.parent
    graph = load_sentences(root / "config" / "sentences.example.ini")
    vocabulary_file = root / "edge_asr" / "training" / "data" / "vocabulary.txt"
    vocabulary = {
        word
        for line in vocabulary_file.read_text().splitlines()
        if not line.startswith("#")
        for word in line.split()
    }
    assert graph.words <= vocabulary, graph.words - vocabulary
    assert graph.accepts("set the thermostat to twenty one degrees".split())
    assert set(graph.finals.values()) >= {"switch", "timer", "media", "answer"}
