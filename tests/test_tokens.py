"""Token tables: sherpa-onnx's tokens.txt format and spelling words in tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_asr.asr.tokens import WORD_START, TokenTable
from edge_asr.errors import BundleError


def table() -> TokenTable:
    return TokenTable.for_words(["turn", "on", "light", "a"])


def test_vocabulary_words_are_single_tokens_and_others_are_spelled() -> None:
    t = table()
    assert len(t.encode("turn on")) == 2
    spelled = t.encode("lamp")
    assert [t.symbols[i] for i in spelled] == [WORD_START, "l", "a", "m", "p"]
    assert t.decode(t.encode("turn on the lamp")) == "turn on the lamp"


def test_roundtrip_through_tokens_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    table().write(path)
    loaded = TokenTable.from_file(path)
    assert loaded == table()
    assert loaded.blank_id == 0
    assert set(loaded.words) == {"turn", "on", "light", "a"}


def test_blank_may_be_anywhere(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(f"{WORD_START}a 0\nb 1\n<blk> 2\n")
    assert TokenTable.from_file(path).blank_id == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no tokens"),
        ("<blk> 0\na 2\n", "missing"),
        ("<blk> 0\na 0\n", "appears twice"),
        ("<blk> zero\n", "expected 'symbol id'"),
        ("a 0\nb 1\n", "no <blk>"),
    ],
)
def test_bad_tokens_file_names_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(content)
    with pytest.raises(BundleError, match=message):
        TokenTable.from_file(path)


def test_word_that_cannot_be_spelled_is_rejected() -> None:
    with pytest.raises(ValueError, match="cannot be spelled"):
        table().encode_word("über")
