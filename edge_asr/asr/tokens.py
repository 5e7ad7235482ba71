"""Token tables in sherpa-onnx's ``tokens.txt`` format and text <-> token conversion.

A line is ``symbol id``. ``<blk>`` names the CTC blank. ``▁`` (U+2581) marks a word start,
as in SentencePiece, so ``▁turn`` is the whole word "turn" and ``▁`` followed by letters
spells a word letter by letter. sherpa-onnx turns ``▁`` into a space when it joins tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_asr.errors import BundleError

WORD_START = "\u2581"
BLANK = "<blk>"
LETTERS = "abcdefghijklmnopqrstuvwxyz'"


@dataclass(frozen=True)
class TokenTable:
    """The id <-> symbol mapping of a CTC model."""

    symbols: tuple[str, ...]
    blank_id: int
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ids", {s: i for i, s in enumerate(self.symbols)})

    @classmethod
    def from_file(cls, path: Path) -> TokenTable:
        """Parse a ``tokens.txt``; a malformed line raises BundleError naming it."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise BundleError(f"{path}: cannot read tokens ({e})") from e
        entries: dict[int, str] = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].isdigit():
                raise BundleError(f"{path}:{lineno}: expected 'symbol id', got {line!r}")
            symbol, idx = parts[0], int(parts[1])
            if idx in entries:
                raise BundleError(f"{path}:{lineno}: id {idx} appears twice")
            entries[idx] = symbol
        if not entries:
            raise BundleError(f"{path}: no tokens")
        missing = sorted(set(range(len(entries))) - entries.keys())
        if missing:
            raise BundleError(f"{path}: ids must be 0..{len(entries) - 1}; missing {missing[:5]}")
        symbols = tuple(entries[i] for i in range(len(entries)))
        if BLANK not in symbols:
            raise BundleError(f"{path}: no {BLANK} (CTC blank) token")
        return cls(symbols, symbols.index(BLANK))

    @classmethod
    def for_words(cls, words: Iterable[str]) -> TokenTable:
        """The built-in layout: blank, one token per word, then ``▁`` and single letters."""
        symbols = [BLANK, *(WORD_START + w for w in sorted(set(words)))]
        symbols += [WORD_START, *LETTERS]
        return cls(tuple(symbols), 0)

    def write(self, path: Path) -> None:
        path.write_text("".join(f"{s} {i}\n" for i, s in enumerate(self.symbols)), "utf-8")

    def __len__(self) -> int:
        return len(self.symbols)

    def id_of(self, symbol: str) -> int | None:
        return self._ids.get(symbol)

    @property
    def words(self) -> tuple[str, ...]:
        """Words that have a token of their own (``▁word``)."""
        return tuple(s[1:] for s in self.symbols if s.startswith(WORD_START) and len(s) > 1)

    def decode(self, ids: Sequence[int]) -> str:
        """Join token ids (blanks and repeats already removed) into text."""
        text = "".join(self.symbols[i] for i in ids if i != self.blank_id)
        return " ".join(text.replace(WORD_START, " ").split())

    def encode_word(self, word: str) -> list[int]:
        """Token ids that spell ``word``: its own token if it has one, else ``▁`` + letters.

        Raises ValueError for a word the table cannot spell.
        """
        whole = self._ids.get(WORD_START + word)
        if whole is not None:
            return [whole]
        start = self._ids.get(WORD_START)
        if start is not None and all(c in self._ids for c in word):
            return [start, *(self._ids[c] for c in word)]
        # SentencePiece-style tables: a first piece with ``▁`` then plain letters.
        first = self._ids.get(WORD_START + word[0]) if word else None
        if first is not None and all(c in self._ids for c in word[1:]):
            return [first, *(self._ids[c] for c in word[1:])]
        raise ValueError(f"word {word!r} cannot be spelled with this token table")

    def encode(self, text: str) -> list[int]:
        """Token ids for normalized text (lower case words separated by spaces)."""
        ids: list[int] = []
        for word in text.split():
            ids.extend(self.encode_word(word))
        return ids
