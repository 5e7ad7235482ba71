"""Model bundles: a folder with an ONNX CTC model, its tokens and (optionally) a word list.

The layout follows sherpa-onnx's offline CTC models, so sherpa-onnx can load ours and users
can point edge-asr at other compatible bundles::

    model.int8.onnx (or model.onnx)   inputs x (N, T, 80) float32, x_lens (N,) int64
                                      outputs log_probs (N, T', V), log_probs_len (N,) int64
    tokens.txt                        ``symbol id`` per line, ``<blk>`` is the blank
    words.txt                         optional: the words vocabulary-constrained decoding allows
    MODEL_CARD.md                     optional: how the model was made and measured

ONNX metadata (all optional; defaults in brackets): model_name [folder name], model_version
[unknown], language [en], subsampling_factor [4], feature_dim [80], sample_rate [16000],
blank_id [the ``<blk>`` token], vocab_size [checked against tokens.txt if present].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_asr.asr.tokens import TokenTable
from edge_asr.errors import BundleError

BUILTIN_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "home-en"
MODEL_FILES = ("model.int8.onnx", "model.onnx")
SUPPORTED_FEATURE_TYPES = ("kaldi-fbank",)


@dataclass(frozen=True)
class ModelBundle:
    """A validated model folder with its onnxruntime session."""

    directory: Path
    session: Any  # onnxruntime.InferenceSession, imported lazily
    model_path: Path
    tokens: TokenTable
    words: tuple[str, ...]
    name: str
    version: str
    language: str
    subsampling_factor: int
    feature_dim: int
    sample_rate: int

    @property
    def frame_shift_s(self) -> float:
        """Seconds per model output frame (10 ms features times the subsampling)."""
        return 0.01 * self.subsampling_factor


def _int_meta(meta: dict[str, str], key: str, default: int, where: Path) -> int:
    raw = meta.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BundleError(f"{where}: metadata {key}={raw!r} is not an integer") from None
    if value <= 0:
        raise BundleError(f"{where}: metadata {key}={value} must be positive")
    return value


def _read_words(path: Path, tokens: TokenTable) -> tuple[str, ...]:
    if not path.exists():
        return tokens.words
    try:
        lines = path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: cannot read word list ({e})") from e
    words = tuple(dict.fromkeys(w.lower() for w in lines))
    for word in words:
        try:
            tokens.encode_word(word)
        except ValueError:
            raise BundleError(f"{path}: word {word!r} cannot be spelled with tokens.txt") from None
    return words


def load_bundle(
    directory: Path | None = None,
    *,
    num_threads: int = 1,
    provider: str = "CPUExecutionProvider",
) -> ModelBundle:
    """Validate a bundle folder (``None``: the built-in model) and open its ONNX session.

    Raises BundleError naming the missing or wrong file or key; a corrupt or truncated
    model fails here with a one-line message.
    """
    import onnxruntime as ort

    directory = Path(directory) if directory is not None else BUILTIN_MODEL_DIR
    if not directory.is_dir():
        raise BundleError(f"model bundle {directory}: not a directory")
    model_path = next((directory / f for f in MODEL_FILES if (directory / f).is_file()), None)
    if model_path is None:
        raise BundleError(f"model bundle {directory}: no {' or '.join(MODEL_FILES)}")
    tokens_path = directory / "tokens.txt"
    if not tokens_path.is_file():
        raise BundleError(f"model bundle {directory}: tokens.txt missing")
    tokens = TokenTable.from_file(tokens_path)

    available = ort.get_available_providers()
    if provider not in available:
        raise BundleError(
            f"onnxruntime provider {provider!r} is not available; available: {', '.join(available)}"
        )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # No memory arena: its buffers, sized by the longest utterance so far, would stay
    # allocated for the life of the daemon (~10 MB after a 10 s one); malloc costs nothing here.
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    try:
        session = ort.InferenceSession(str(model_path), options, providers=[provider])
    except Exception as e:  # onnxruntime raises several unrelated types for bad files
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BundleError(f"{model_path}: not a loadable ONNX model ({first_line})") from None

    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 2 or len(outputs) < 2:
        raise BundleError(
            f"{model_path}: expected inputs (features, lengths) and outputs "
            f"(log_probs, lengths); got {len(inputs)} inputs, {len(outputs)} outputs"
        )
    if inputs[0].type != "tensor(float)" or len(inputs[0].shape) != 3:
        raise BundleError(f"{model_path}: input 0 must be float32 (N, T, C) features")
    if inputs[1].type != "tensor(int64)":
        raise BundleError(f"{model_path}: input 1 must be int64 lengths")

    meta = dict(session.get_modelmeta().custom_metadata_map)
    feature_type = meta.get("feature_type", "kaldi-fbank")
    if feature_type not in SUPPORTED_FEATURE_TYPES:
        raise BundleError(
            f"{model_path}: metadata feature_type={feature_type!r}; supported: "
            f"{', '.join(SUPPORTED_FEATURE_TYPES)}"
        )
    feature_dim = _int_meta(meta, "feature_dim", 80, model_path)
    declared_dim = inputs[0].shape[2]
    if isinstance(declared_dim, int) and declared_dim != feature_dim:
        raise BundleError(
            f"{model_path}: input has {declared_dim} features but metadata says {feature_dim}"
        )
    vocab = outputs[0].shape[2] if len(outputs[0].shape) == 3 else None
    vocab_meta = meta.get("vocab_size")
    if isinstance(vocab, int) and vocab != len(tokens):
        raise BundleError(
            f"{tokens_path}: {len(tokens)} tokens but the model outputs {vocab} classes"
        )
    if vocab_meta is not None and _int_meta(meta, "vocab_size", 1, model_path) != len(tokens):
        raise BundleError(
            f"{tokens_path}: {len(tokens)} tokens but metadata vocab_size={vocab_meta}"
        )
    blank_meta = meta.get("blank_id")
    if blank_meta is not None and blank_meta != str(tokens.blank_id):
        raise BundleError(
            f"{model_path}: metadata blank_id={blank_meta} but <blk> is id {tokens.blank_id}"
        )

    return ModelBundle(
        directory=directory,
        session=session,
        model_path=model_path,
        tokens=tokens,
        words=_read_words(directory / "words.txt", tokens),
        name=meta.get("model_name", directory.name),
        version=meta.get("model_version", "unknown"),
        language=meta.get("language", "en"),
        subsampling_factor=_int_meta(meta, "subsampling_factor", 4, model_path),
        feature_dim=feature_dim,
        sample_rate=_int_meta(meta, "sample_rate", 16000, model_path),
    )
