"""The recognizer: samples in, a Transcript out. Thread-safe; one per process is enough."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import soxr

from edge_asr.asr.bundle import ModelBundle, load_bundle
from edge_asr.asr.decoding import Hypothesis, TokenGraph, constrained, greedy
from edge_asr.asr.features import FbankConfig, compute_fbank, with_quiet_context
from edge_asr.asr.grammar import WordGraph, load_sentences
from edge_asr.errors import AudioError, BundleError, GrammarError

log = logging.getLogger(__name__)


class Decoding(str, Enum):
    """How model scores become text."""

    GREEDY = "greedy"  # anything the tokens can spell
    VOCABULARY = "vocabulary"  # any sequence of the bundle's words
    SENTENCES = "sentences"  # only sentences of a sentences file


@dataclass(frozen=True)
class Transcript:
    """What was said in one stretch of audio."""

    text: str
    confidence: float  # 0..1, how sure the model is of this text
    duration_s: float
    processing_ms: float
    tokens: list[str] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)  # seconds, one per token
    intent: str | None = None  # the sentences-file section that matched, if any


class Recognizer:
    """Features → ONNX CTC model → decoding, for one model bundle."""

    def __init__(
        self,
        bundle: ModelBundle,
        decoding: Decoding = Decoding.VOCABULARY,
        sentences: Path | None = None,
    ) -> None:
        self.bundle = bundle
        self.decoding = Decoding(decoding)
        self._fbank = FbankConfig(sample_rate=bundle.sample_rate, num_bins=bundle.feature_dim)
        self._inputs = [i.name for i in bundle.session.get_inputs()]
        self._graph: TokenGraph | None = None
        self._graph_lock = threading.Lock()
        if self.decoding is Decoding.SENTENCES:
            if sentences is None:
                raise GrammarError("decoding 'sentences' needs a sentences file")
            self.reload_sentences(sentences)
        elif self.decoding is Decoding.VOCABULARY:
            if not bundle.words:
                raise BundleError(
                    f"model bundle {bundle.directory}: no words.txt and no whole-word tokens "
                    "for vocabulary decoding; use greedy or sentences decoding"
                )
            self._graph = self._compile(WordGraph.any_of(bundle.words), "vocabulary")
        self._warm_up()

    @classmethod
    def load(
        cls,
        model_dir: Path | None = None,
        num_threads: int = 1,
        provider: str = "CPUExecutionProvider",
        decoding: Decoding | str = Decoding.VOCABULARY,
        sentences: Path | None = None,
    ) -> Recognizer:
        """Load a bundle (``None``: the built-in model) and get it ready to transcribe.

        With ``sentences`` and no explicit decoding choice other than vocabulary, the
        sentences file constrains what is recognized.
        """
        if sentences is not None and Decoding(decoding) is Decoding.VOCABULARY:
            decoding = Decoding.SENTENCES
        bundle = load_bundle(model_dir, num_threads=num_threads, provider=provider)
        return cls(bundle, Decoding(decoding), sentences)

    @property
    def sample_rate(self) -> int:
        return self.bundle.sample_rate

    @property
    def model_name(self) -> str:
        return self.bundle.name

    @property
    def model_version(self) -> str:
        return self.bundle.version

    @property
    def language(self) -> str:
        return self.bundle.language

    def _compile(self, graph: WordGraph, what: str) -> TokenGraph:
        try:
            return TokenGraph(graph, self.bundle.tokens)
        except ValueError as e:
            raise GrammarError(f"{what}: {e}") from None

    def reload_sentences(self, path: Path) -> None:
        """Switch to (or re-read) a sentences file; the old grammar stays on error."""
        graph = self._compile(load_sentences(path), str(path))
        with self._graph_lock:
            self._graph = graph
            self.decoding = Decoding.SENTENCES
        log.info("sentences loaded from %s", path)

    def _warm_up(self) -> None:
        # The first run allocates and plans; do it now, not on the first utterance.
        self.transcribe(np.zeros(self.sample_rate // 2, dtype=np.float32), self.sample_rate)

    def log_probs(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """(T', V) log-probabilities for mono float32 samples at any rate (as given: no
        context added; ``transcribe`` adds it)."""
        if sample_rate != self.sample_rate:
            samples = soxr.resample(samples, sample_rate, self.sample_rate, quality="HQ")
        feats = compute_fbank(samples, self._fbank)
        if feats.shape[0] == 0:
            return np.zeros((0, len(self.bundle.tokens)), dtype=np.float32)
        out = self.bundle.session.run(
            None,
            {
                self._inputs[0]: feats[np.newaxis],
                self._inputs[1]: np.array([feats.shape[0]], dtype=np.int64),
            },
        )
        n = int(np.asarray(out[1]).reshape(-1)[0])
        return np.asarray(out[0][0, :n], dtype=np.float32)

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> Transcript:
        """Recognize one utterance of mono float32 samples in [-1, 1] at ``sample_rate``."""
        started = time.perf_counter()
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not np.isfinite(samples).all():
            raise AudioError("audio contains NaN or infinite samples")
        if sample_rate <= 0:
            raise AudioError(f"invalid sample rate {sample_rate}")
        padded, head = with_quiet_context(samples, sample_rate)
        log_probs = self.log_probs(padded, sample_rate)
        graph = self._graph
        blank = self.bundle.tokens.blank_id
        if graph is None or log_probs.shape[0] == 0:
            hyp = greedy(log_probs, blank)
        else:
            hyp = constrained(log_probs, blank, graph)
        return self._transcript(
            hyp, log_probs, len(samples) / sample_rate, started, head / sample_rate
        )

    def _transcript(
        self,
        hyp: Hypothesis,
        log_probs: np.ndarray,
        duration_s: float,
        started: float,
        added_s: float,
    ) -> Transcript:
        table = self.bundle.tokens
        text = " ".join(hyp.words) if hyp.words is not None else table.decode(hyp.token_ids)
        return Transcript(
            text=text,
            confidence=_confidence(hyp, log_probs, table.blank_id),
            duration_s=round(duration_s, 3),
            processing_ms=round((time.perf_counter() - started) * 1000, 1),
            tokens=[table.symbols[i] for i in hyp.token_ids],
            timestamps=[
                round(max(0.0, f * self.bundle.frame_shift_s - added_s), 2) for f in hyp.frames
            ],
            intent=hyp.intent,
        )


def _confidence(hyp: Hypothesis, log_probs: np.ndarray, blank_id: int) -> float:
    """Mean posterior of the emitted tokens, scaled down by how far the path is from the
    unconstrained best path (a grammar that forces words the audio does not support)."""
    if log_probs.shape[0] == 0:
        return 0.0
    if not hyp.token_ids:
        return float(np.exp(log_probs[:, blank_id].mean()))
    peaks = [
        float(np.exp(log_probs[f, tok])) for tok, f in zip(hyp.token_ids, hyp.frames, strict=True)
    ]
    unconstrained = float(log_probs.max(axis=1).sum())
    gap = max(0.0, unconstrained - hyp.score) / len(hyp.token_ids)
    confidence = float(np.mean(peaks)) * float(np.exp(-gap))
    if not hyp.complete:
        confidence *= 0.5
    return round(min(1.0, max(0.0, confidence)), 4)
