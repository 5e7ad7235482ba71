"""Sentence grammars: what the recognizer may hear, without retraining.

A sentences file, in the spirit of Rhasspy's ``sentences.ini`` and JSGF::

    # comments start with '#'
    numbers = (one | two | three | ten | twenty)   # a rule: name = expression
    [lights]                                       # a section names an intent
    turn (on | off) [the] (kitchen | bedroom) (light | lights)
    dim [the] lights [to] <numbers> percent        # <name> uses a rule

    [timer]
    set a timer for <numbers> (minute | minutes)

``( a | b )`` is a choice, ``[ x ]`` is optional, words are lower-cased. Every line under a
section is one sentence of that intent. The file compiles into a word graph: a small
nondeterministic automaton whose arcs carry words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edge_asr.errors import GrammarError

_TOKEN_RE = re.compile(r"\s*(<[A-Za-z0-9_\-]+>|[()\[\]|]|[^\s()\[\]|<>]+)")
_RULE_RE = re.compile(r"^([A-Za-z0-9_\-]+)\s*=\s*(.+)$")
_SECTION_RE = re.compile(r"^\[([A-Za-z0-9_\-\. ]+)\]$")
_WORD_RE = re.compile(r"^[a-z']+$")


@dataclass
class WordGraph:
    """An automaton over words: state 0 is the start; ``finals`` maps end states to intents.

    ``arcs[s]`` lists ``(word, next_state)``; ``word`` is None for an epsilon arc.
    """

    arcs: list[list[tuple[str | None, int]]] = field(default_factory=lambda: [[]])
    finals: dict[int, str | None] = field(default_factory=dict)

    def new_state(self) -> int:
        self.arcs.append([])
        return len(self.arcs) - 1

    def add_arc(self, src: int, word: str | None, dst: int) -> None:
        self.arcs[src].append((word, dst))

    @property
    def words(self) -> set[str]:
        return {w for arcs in self.arcs for w, _ in arcs if w is not None}

    def closure(self, state: int) -> set[int]:
        """States reachable from ``state`` by epsilon arcs, itself included."""
        seen, stack = {state}, [state]
        while stack:
            for word, dst in self.arcs[stack.pop()]:
                if word is None and dst not in seen:
                    seen.add(dst)
                    stack.append(dst)
        return seen

    def accepts(self, words: Iterable[str]) -> bool:
        """True if the word sequence is a complete sentence of the grammar."""
        current = self.closure(0)
        for word in words:
            nxt: set[int] = set()
            for s in current:
                for w, dst in self.arcs[s]:
                    if w == word:
                        nxt |= self.closure(dst)
            if not nxt:
                return False
            current = nxt
        return any(s in self.finals for s in current)

    @classmethod
    def any_of(cls, words: Iterable[str]) -> WordGraph:
        """Any sequence (including none) of the given words."""
        graph = cls()
        for word in sorted(set(words)):
            graph.add_arc(0, word, 0)
        graph.finals[0] = None
        return graph


class _Parser:
    """Recursive descent over one expression; builds fragments into a WordGraph."""

    def __init__(self, graph: WordGraph, rules: dict[str, list[str]], where: str) -> None:
        self.graph, self.rules, self.where = graph, rules, where
        self.tokens: list[str] = []
        self.pos = 0
        self.expanding: list[str] = []

    def error(self, message: str) -> GrammarError:
        return GrammarError(f"{self.where}: {message}")

    def build(self, text: str, start: int) -> int:
        """Add ``text`` starting at ``start``; return its end state."""
        saved = self.tokens, self.pos
        self.tokens, self.pos = self.tokenize(text), 0
        end = self.alternatives(start)
        if self.pos != len(self.tokens):
            raise self.error(f"unexpected {self.tokens[self.pos]!r}")
        self.tokens, self.pos = saved
        return end

    def tokenize(self, text: str) -> list[str]:
        tokens, pos = [], 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN_RE.match(text, pos)
            if not m or not m.group(1):
                raise self.error(f"cannot parse near {text[pos : pos + 20]!r}")
            tokens.append(m.group(1))
            pos = m.end()
        return tokens

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def alternatives(self, start: int) -> int:
        end = self.graph.new_state()
        while True:
            branch_end = self.sequence(start)
            self.graph.add_arc(branch_end, None, end)
            if self.peek() != "|":
                return end
            self.pos += 1

    def sequence(self, start: int) -> int:
        state = start
        empty = True
        while (tok := self.peek()) is not None and tok not in ("|", ")", "]"):
            empty = False
            self.pos += 1
            if tok in ("(", "["):
                closing = ")" if tok == "(" else "]"
                end = self.alternatives(state)
                if self.peek() != closing:
                    raise self.error(f"missing {closing!r}")
                self.pos += 1
                if tok == "[":
                    self.graph.add_arc(state, None, end)
                state = end
            elif tok.startswith("<"):
                state = self.reference(tok[1:-1], state)
            else:
                word = tok.lower()
                if not _WORD_RE.match(word):
                    raise self.error(f"word {tok!r} has characters other than letters and '")
                nxt = self.graph.new_state()
                self.graph.add_arc(state, word, nxt)
                state = nxt
        if empty:
            raise self.error("empty alternative")
        return state

    def reference(self, name: str, start: int) -> int:
        if name not in self.rules:
            raise self.error(f"rule <{name}> is not defined")
        if name in self.expanding:
            raise self.error(f"rule <{name}> refers to itself")
        self.expanding.append(name)
        saved = self.tokens, self.pos
        self.tokens, self.pos = self.rules[name], 0
        end = self.alternatives(start)
        if self.pos != len(self.tokens):
            raise self.error(f"rule <{name}>: unexpected {self.tokens[self.pos]!r}")
        self.tokens, self.pos = saved
        self.expanding.pop()
        return end


def parse_sentences(text: str, source: str = "<sentences>") -> WordGraph:
    """Compile sentences-file text into a WordGraph; GrammarError names file and line."""
    graph = WordGraph()
    rules: dict[str, list[str]] = {}
    sentences: list[tuple[int, str, str | None]] = []
    intent: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source}:{lineno}"
        if m := _SECTION_RE.match(line):
            intent = m.group(1).strip()
        elif m := _RULE_RE.match(line):
            rules[m.group(1)] = _Parser(graph, rules, where).tokenize(m.group(2))
        else:
            sentences.append((lineno, line, intent))
    if not sentences:
        raise GrammarError(f"{source}: no sentences")
    for lineno, line, sentence_intent in sentences:
        end = _Parser(graph, rules, f"{source}:{lineno}").build(line, 0)
        graph.finals[end] = sentence_intent
    return graph


def load_sentences(path: Path) -> WordGraph:
    """Read and compile a sentences file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise GrammarError(f"{path}: cannot read sentences file ({e})") from e
    return parse_sentences(text, str(path))
