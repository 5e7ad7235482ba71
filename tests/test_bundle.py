"""Model bundles: the built-in one loads; broken ones fail with a message naming the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge_asr.asr.bundle import BUILTIN_MODEL_DIR, load_bundle
from edge_asr.asr.features import compute_fbank
from edge_asr.errors import BundleError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(BUILTIN_MODEL_DIR, copy)
    return copy


def model_file(directory: Path) -> Path:
    return directory / "model.int8.onnx"


def set_metadata(directory: Path, **values: str) -> None:
    path = model_file(directory)
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props.update(values)
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def test_builtin_bundle_has_the_documented_files_and_metadata() -> None:
    bundle = load_bundle()
    assert bundle.model_path.name == "model.int8.onnx"
    assert bundle.name == "edge-asr-home-en"
    assert bundle.language == "en"
    assert bundle.subsampling_factor == 4
    assert bundle.sample_rate == 16000
    assert bundle.tokens.symbols[bundle.tokens.blank_id] == "<blk>"
    assert {"turn", "kitchen", "lights", "twenty", "okay"} <= set(bundle.words)
    assert (BUILTIN_MODEL_DIR / "MODEL_CARD.md").is_file()
    assert model_file(BUILTIN_MODEL_DIR).stat().st_size <= 5 * 1024 * 1024


def test_builtin_model_is_int8_quantized() -> None:
    model = onnx.load(str(model_file(BUILTIN_MODEL_DIR)))
    ops = {node.op_type for node in model.graph.node}
    assert ops & {"DynamicQuantizeLSTM", "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear"}


def test_model_output_lengths_follow_the_input() -> None:
    bundle = load_bundle()
    feats = compute_fbank(np.zeros(16000 * 3, np.float32))[np.newaxis]
    inputs = [i.name for i in bundle.session.get_inputs()]
    out = bundle.session.run(None, {inputs[0]: feats, inputs[1]: np.array([feats.shape[1]])})
    assert out[1].dtype == np.int64
    assert out[0].shape[1] == out[1][0]
    assert abs(out[1][0] - feats.shape[1] / 4) <= 2


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a directory"):
        load_bundle(tmp_path / "nope")


def test_missing_model_file(bundle_copy: Path) -> None:
    model_file(bundle_copy).unlink()
    with pytest.raises(BundleError, match=r"no model.int8.onnx or model.onnx"):
        load_bundle(bundle_copy)


def test_missing_tokens(bundle_copy: Path) -> None:
    (bundle_copy / "tokens.txt").unlink()
    with pytest.raises(BundleError, match="tokens.txt missing"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize("keep", [0, 100, 5000])
def test_truncated_model_is_a_one_line_error(bundle_copy: Path, keep: int) -> None:
    path = model_file(bundle_copy)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(BundleError, match="not a loadable ONNX model") as info:
        load_bundle(bundle_copy)
    assert "\n" not in str(info.value)


def test_garbage_model_file(bundle_copy: Path) -> None:
    model_file(bundle_copy).write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(BundleError, match="not a loadable ONNX model"):
        load_bundle(bundle_copy)


def test_tokens_that_do_not_match_the_model(bundle_copy: Path) -> None:
    tokens = bundle_copy / "tokens.txt"
    lines = tokens.read_text().splitlines()
    tokens.write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(BundleError, match="tokens but"):
        load_bundle(bundle_copy)


def test_wrong_metadata_is_named(bundle_copy: Path) -> None:
    set_metadata(bundle_copy, subsampling_factor="zero")
    with pytest.raises(BundleError, match="subsampling_factor='zero'"):
        load_bundle(bundle_copy)


def test_unsupported_feature_type(bundle_copy: Path) -> None:
    set_metadata(bundle_copy, feature_type="whisper-mel")
    with pytest.raises(BundleError, match="feature_type='whisper-mel'"):
        load_bundle(bundle_copy)


def test_word_list_with_unspellable_word(bundle_copy: Path) -> None:
    (bundle_copy / "words.txt").write_text("turn\nschön\n")
    with pytest.raises(BundleError, match="schön"):
        load_bundle(bundle_copy)


def test_unknown_provider_is_named() -> None:
    with pytest.raises(BundleError, match="provider 'NoSuchExecutionProvider'"):
        load_bundle(provider="NoSuchExecutionProvider")


def test_bundle_without_word_list_uses_whole_word_tokens(bundle_copy: Path) -> None:
    (bundle_copy / "words.txt").unlink()
    assert "kitchen" in load_bundle(bundle_copy).words
