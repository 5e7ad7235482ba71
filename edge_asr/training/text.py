"""Training sentences: the command vocabulary, phrase templates, and text normalization."""

from __future__ import annotations

import copy
import logging
import random
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

DATA_DIR = Path(str(resources.files("edge_asr.training") / "data"))
VOCABULARY_FILE = DATA_DIR / "vocabulary.txt"
TEMPLATES_FILE = DATA_DIR / "templates.txt"

# Shares of template sentences and of random word sequences; the rest are single words.
SENTENCE_MIX = (0.75, 0.17)

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def load_vocabulary(path: Path = VOCABULARY_FILE) -> list[str]:
    """Words of the closed vocabulary in file order (``#`` starts a comment line)."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#"):
            continue
        words.extend(line.split())
    return list(dict.fromkeys(words))


def number_words(n: int) -> str:
    """Spoken form of 0 <= n <= 999, e.g. 142 -> "one hundred forty two"."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    hundreds, rest = divmod(n, 100)
    return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_words(rest))


def normalize(text: str) -> str:
    """Lower-case words of a-z and apostrophes; digits spoken; other punctuation dropped."""
    text = text.lower().replace("-", " ").replace("/", " ")
    text = re.sub(r"\d+", lambda m: f" {_digits_to_words(m.group())} ", text)
    text = re.sub(r"[^a-z' ]", " ", text)
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)


def _digits_to_words(digits: str) -> str:
    n = int(digits)
    if len(digits) > 3 or digits.startswith("0") and len(digits) > 1:
        return " ".join(_ONES[int(d)] for d in digits)
    return number_words(n)


# One part of a template pattern: an opening brace, a $slot or a word.
_PATTERN_PART = re.compile(r"\s*(?:(\{)|\$(\w+)|([^\s{}$|]+))")


def _closing_brace(pattern: str, start: int) -> int:
    """Index of the ``}`` that closes the brace opened just before ``start``."""
    depth = 1
    for i in range(start, len(pattern)):
        depth += {"{": 1, "}": -1}.get(pattern[i], 0)
        if depth == 0:
            return i
    raise ValueError(f"templates: unclosed brace in {pattern!r}")


def _split_top(text: str) -> list[str]:
    """``a|{b|c}|d`` -> ``["a", "{b|c}", "d"]``: split on the ``|`` outside braces."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += {"{": 1, "}": -1}.get(c, 0)
        if c == "|" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


@dataclass(frozen=True)
class Template:
    pattern: str
    weight: int


class SentenceGenerator:
    """Random sentences from ``templates.txt`` plus random vocabulary word sequences."""

    def __init__(
        self,
        vocabulary: list[str],
        templates_path: Path = TEMPLATES_FILE,
        mix: tuple[float, float] = SENTENCE_MIX,
    ) -> None:
        self.vocabulary = vocabulary
        self.mix = mix
        self.slots: dict[str, list[str]] = {}
        self.templates: list[Template] = []
        for line in templates_path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.fullmatch(r"\$(\w+)\s*=\s*(.*)", line)
            if m:
                self.slots[m.group(1)] = [a.strip() for a in m.group(2).split("|")]
                continue
            m = re.fullmatch(r"(\d+)\*(.*)", line)
            weight, pattern = (int(m.group(1)), m.group(2)) if m else (1, line)
            self.templates.append(Template(pattern.strip(), weight))
        self._weights = [t.weight for t in self.templates]

    def _number(self, rng: random.Random) -> str:
        r = rng.random()
        if r < 0.5:
            return number_words(rng.randint(0, 20))
        if r < 0.9:
            return number_words(rng.randint(21, 99))
        return rng.choice(
            ["one hundred", "a hundred", "hundred", number_words(rng.randint(100, 999))]
        )

    def expand(self, pattern: str, rng: random.Random) -> str:
        """One random expansion of a template pattern."""
        # Innermost braces first, so alternatives may nest.
        while True:
            m = re.search(r"\{([^{}]*)\}", pattern)
            if not m:
                break
            choice = rng.choice(m.group(1).split("|"))
            pattern = pattern[: m.start()] + choice + pattern[m.end() :]
        for _ in range(5):  # slots may refer to other slots
            if "$" not in pattern:
                break
            pattern = re.sub(r"\$(\w+)", lambda m: self._slot(m.group(1), rng), pattern)
        return " ".join(pattern.split())

    def _slot(self, name: str, rng: random.Random) -> str:
        if name == "number":
            return self._number(rng)
        if name not in self.slots:
            raise ValueError(f"templates: unknown slot ${name}")
        return rng.choice(self.slots[name])

    def is_command(self, text: str) -> bool:
        """Whether ``text`` is a sentence the templates can make (a command, as opposed to a
        random word sequence or a single word; any run of number words counts as a number)."""
        return self._command_re.fullmatch(" ".join(text.split()) + " ") is not None

    @cached_property
    def _command_re(self) -> re.Pattern[str]:
        alternatives = "|".join(self._regex(t.pattern) for t in self.templates)
        return re.compile(f"(?:{alternatives})")

    def _regex(self, pattern: str) -> str:
        """Regex of a template pattern over words that are each followed by one space."""
        out, i, pattern = [], 0, pattern.strip()
        while i < len(pattern):
            m = _PATTERN_PART.match(pattern, i)
            if m is None:
                raise ValueError(f"templates: cannot read {pattern!r} at {pattern[i:]!r}")
            brace, slot, word = m.groups()
            i = m.end()
            if brace:
                close = _closing_brace(pattern, i)
                out.append(self._choice(_split_top(pattern[i:close])))
                i = close + 1
            elif slot == "number":
                words = "|".join([*_ONES, *_TENS[2:], "hundred", "a hundred"])
                out.append(f"(?:(?:{words}) )+")
            elif slot:
                if slot not in self.slots:
                    raise ValueError(f"templates: unknown slot ${slot}")
                out.append(self._choice(self.slots[slot]))
            else:
                out.append(re.escape(word) + " ")
        return "".join(out)

    def _choice(self, alternatives: list[str]) -> str:
        return "(?:" + "|".join(self._regex(a.strip()) for a in alternatives) + ")"

    def random_words(self, rng: random.Random, max_words: int = 6) -> str:
        return " ".join(rng.choice(self.vocabulary) for _ in range(rng.randint(1, max_words)))

    def with_mix(self, mix: tuple[float, float]) -> SentenceGenerator:
        """The same vocabulary and templates (not read again), another share of templates and
        word sequences."""
        other = copy.copy(self)
        other.mix = mix
        return other

    def sentence(self, rng: random.Random) -> str:
        """A template sentence, a random word sequence or a single word, by ``mix`` (the
        shares of the first two; 75 % and 17 % by default, leaving 8 % single words)."""
        templates, sequences = self.mix
        r = rng.random()
        if r < templates:
            template = rng.choices(self.templates, self._weights)[0]
            text = self.expand(template.pattern, rng)
            if text:
                return text
        if r < templates + sequences:
            return self.random_words(rng)
        return rng.choice(self.vocabulary)

    def sentences(self, n: int, seed: int) -> list[str]:
        rng = random.Random(seed)
        return [self.sentence(rng) for _ in range(n)]

    def check(self, n: int = 5000) -> Counter[str]:
        """Raise ValueError if a template yields a word outside the vocabulary; return counts."""
        _ = self._command_re  # compiled now, not first at evaluation, the end of a run
        vocab = set(self.vocabulary)
        rng = random.Random(0)
        counts: Counter[str] = Counter()
        for t in self.templates:
            for _ in range(max(1, n // len(self.templates))):
                text = self.expand(t.pattern, rng)
                oov = [w for w in text.split() if w not in vocab]
                if oov:
                    raise ValueError(
                        f"template {t.pattern!r} yields words not in vocabulary: {oov}"
                    )
                counts.update(text.split())
        return counts
