"""CLI: ``python -m edge_asr.training --out DIR [--smoke] [--seed N] [--max-minutes M]``.

Re-running the same command resumes: synthesized data, features and checkpoints are cached
under the work directory.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edge_asr.training.data import FESTIVAL_VARIETY, FULL_DATA, VOICE_CHANGE_SOURCES
from edge_asr.training.model import HIDDEN
from edge_asr.training.pipeline import STRONG_AUGMENT, full_config, run, smoke_config
from edge_asr.training.synth import KOKORO_HELDOUT_VOICES, KOKORO_TRAIN_VOICES, SynthesizerMissing
from edge_asr.training.text import SENTENCE_MIX


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_asr.training", description=__doc__)
    strong, variety = STRONG_AUGMENT, FESTIVAL_VARIETY
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny data and a few steps (pipeline test)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work", type=Path, default=Path("work/train"), help="cache and checkpoint folder"
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=78.0,
        help="training time budget in minutes, counted over all invocations of the run "
        "(data, export and eval not counted); the cosine schedule ends at it or at --steps",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=24000,
        help="planned updates of the full run; raising it continues a finished run "
        "(the learning rate warms back up along the cosine schedule)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch CPU threads for training (1 on a machine shared with other work)",
    )
    parser.add_argument(
        "--voice-change",
        type=float,
        default=0.0,
        metavar="P",
        help="full run: share of training speech made into another speaker with Praat's "
        "Change gender (needs praat-parselmouth; work folder full-vcP)",
    )
    parser.add_argument(
        "--voice-change-on",
        default=",".join(VOICE_CHANGE_SOURCES),
        metavar="SOURCES",
        help="full run: the sources whose speech --voice-change applies to, comma-separated "
        f"from {', '.join(VOICE_CHANGE_SOURCES)} (default all; asterisk is the real speaker; "
        "a subset trains in work folder full-vcP-on-…)",
    )
    parser.add_argument(
        "--utterance-cmn",
        action="store_true",
        help="full run: the model subtracts each utterance's mean feature (in the ONNX graph; "
        "work folder full-…-ucmn)",
    )
    parser.add_argument(
        "--strong-augment",
        action="store_true",
        help=f"full run: wider VTLP warp ({strong['warp'][0]:g}-{strong['warp'][1]:g}, p "
        f"{strong['p_warp']:g}) and stronger SpecAugment (frequency masks up to "
        f"{strong['freq_mask_bins']} bins, {strong['time_masks']} time masks; work folder "
        "full-…-sa)",
    )
    parser.add_argument(
        "--hidden",
        type=int,
        default=HIDDEN,
        metavar="N",
        help=f"full run: LSTM units per direction (default {HIDDEN}; another size trains in "
        "work folder full-…-hN)",
    )
    parser.add_argument(
        "--festival-variety",
        action="store_true",
        help=f"full run: {variety['festival_per_voice']:,} utterances per festival voice (not "
        f"{FULL_DATA.festival_per_voice:,}) and {variety['espeak']:,} espeak-ng ones (not "
        f"{FULL_DATA.espeak:,}); the diphone voice speaks at a random mean pitch of "
        f"{variety['festival_f0'][0]:g}-{variety['festival_f0'][1]:g} Hz (work folder full-…-fv)",
    )
    parser.add_argument(
        "--festival-per-voice",
        type=int,
        metavar="N",
        help="full run: utterances per festival training voice (default "
        f"{FULL_DATA.festival_per_voice:,}, {variety['festival_per_voice']:,} with "
        "--festival-variety; another number trains in work folder full-…-fpvN)",
    )
    parser.add_argument(
        "--espeak",
        type=int,
        metavar="N",
        help=f"full run: espeak-ng training utterances (default {FULL_DATA.espeak:,}, "
        f"{variety['espeak']:,} with --festival-variety; another number trains in work folder "
        "full-…-espN)",
    )
    parser.add_argument(
        "--gnuspeech",
        type=int,
        default=0,
        metavar="N",
        help="full run: also train on N utterances of GnuSpeech's articulatory synthesizer, "
        "each with its own random speaker (needs Node.js and npm; work folder full-…-gsN)",
    )
    parser.add_argument(
        "--piper",
        type=int,
        default=0,
        metavar="N",
        help="full run: also train on N utterances of a neural voice (Piper, en_US joe), each "
        "with its own tempo and intonation, half of them made into another speaker (work "
        "folder full-…-pipN)",
    )
    parser.add_argument(
        "--kokoro",
        type=int,
        default=0,
        metavar="N",
        help="full run: also train on N utterances of a neural multi-speaker model (Kokoro, "
        f"{len(KOKORO_TRAIN_VOICES)} English voices, half of the utterances by a mix of two), "
        f"each at its own speed; {len(KOKORO_HELDOUT_VOICES)} more voices are held out as "
        "the kokoro_heldout set (needs npm once for the voices; work folder full-…-kokN)",
    )
    parser.add_argument(
        "--sentence-mix",
        metavar="T,W",
        help="full run: shares of the training sentences that are template commands (T) and "
        f"random word sequences (W); the rest are single words (default "
        f"{SENTENCE_MIX[0]:g},{SENTENCE_MIX[1]:g}; the evaluation sets keep it; another mix "
        "trains in work folder full-…-mixT-W)",
    )
    parser.add_argument(
        "--average-last",
        type=float,
        default=0.0,
        metavar="F",
        help="full run: the model is the mean of its weights over the last share F of training "
        "(a snapshot every 100 updates; e.g. 0.25; work folder full-…-avgF); the checkpoint "
        "keeps the last weights too",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="full run: forward and backward passes in bfloat16 (weights stay float32); about "
        "1.3x faster per update on CPUs with AVX512-BF16 or AMX, slower on others (work folder "
        "full-…-bf16)",
    )
    parser.add_argument(
        "--time-reduction",
        type=int,
        choices=(1, 2),
        default=1,
        help="full run: 2 runs the LSTM at 80 ms frames instead of 40 ms (a stride-2 "
        "convolution before it; outputs stay 40 ms): about 1.3x faster per update (work "
        "folder full-…-tr2)",
    )
    parser.add_argument(
        "--phone-ctc",
        type=float,
        default=0.0,
        metavar="W",
        help="train a second CTC head on the first LSTM layer to the transcript's "
        "phonemes (espeak-ng's pronunciations of the vocabulary) with loss weight W (e.g. 0.3; "
        "the word loss gets 1 - W); the head is for training only and not exported (work "
        "folder full-…-pcW)",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.voice_change <= 1.0:
        parser.error(f"--voice-change must be between 0 and 1, not {args.voice_change:g}")
    sources = tuple(dict.fromkeys(x.strip() for x in args.voice_change_on.split(",") if x.strip()))
    unknown = [x for x in sources if x not in VOICE_CHANGE_SOURCES]
    if unknown or not sources:
        parser.error(
            f"--voice-change-on takes sources from {', '.join(VOICE_CHANGE_SOURCES)}, "
            f"not {args.voice_change_on!r}"
        )
    for flag, count, top in (
        ("--festival-per-voice", args.festival_per_voice, 100_000),
        ("--espeak", args.espeak, 200_000),
        ("--gnuspeech", args.gnuspeech, 200_000),
        ("--piper", args.piper, 200_000),
        ("--kokoro", args.kokoro, 200_000),
    ):
        if count is not None and not 0 <= count <= top:
            parser.error(f"{flag} must be between 0 and {top}, not {count}")
    mix = None
    if args.sentence_mix is not None:
        mix = _sentence_mix(args.sentence_mix)
        if mix is None:
            parser.error(
                "--sentence-mix takes two shares T,W between 0 and 1 that add up to at most 1 "
                f"(templates, word sequences), not {args.sentence_mix!r}"
            )
    if not 0.0 <= args.average_last < 1.0:
        parser.error(f"--average-last must be at least 0 and below 1, not {args.average_last:g}")
    if not 0.0 <= args.phone_ctc < 1.0:
        parser.error(f"--phone-ctc must be at least 0 and below 1, not {args.phone_ctc:g}")
    if args.phone_ctc and args.time_reduction != 1:
        parser.error("--phone-ctc needs --time-reduction 1")
    if not 16 <= args.hidden <= 1024:
        parser.error(f"--hidden must be between 16 and 1024, not {args.hidden}")

    if args.smoke:
        recipe = _full_run_flags_set(parser, args)
        if recipe:
            parser.error(
                "--smoke runs its own tiny recipe (it takes --seed, --threads, --max-minutes and "
                f"--phone-ctc), not {', '.join(recipe)}"
            )
        cfg = smoke_config(args.seed, args.max_minutes, args.threads, args.phone_ctc)
    else:
        cfg = full_config(
            args.seed,
            args.max_minutes,
            args.steps,
            args.threads,
            args.voice_change,
            args.utterance_cmn,
            args.strong_augment,
            args.hidden,
            args.festival_variety,
            args.festival_per_voice,
            sources,
            args.average_last,
            args.espeak,
            args.gnuspeech,
            mix,
            args.piper,
            args.bf16,
            args.time_reduction,
            args.kokoro,
            args.phone_ctc,
        )
    work = args.work / f"{cfg.name}-seed{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(work / "train.log")):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    try:
        metrics = run(cfg, args.out, work)
    except SynthesizerMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wer = metrics["wer"]
    assert isinstance(wer, dict)
    for group, kinds in wer.items():
        if "/voice:" in group:
            continue
        i8 = kinds["int8"]
        print(
            f"{group:32s} int8 WER greedy {i8['greedy_wer']:5.1f} %  vocab {i8['vocab_wer']:5.1f} %"
        )
    print(f"bundle: {args.out}")
    return 0


def _full_run_flags_set(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The flags of a full run's recipe that were given a value other than their default."""
    flags = (
        "--steps --voice-change --voice-change-on --utterance-cmn --strong-augment --hidden "
        "--festival-variety --festival-per-voice --espeak --gnuspeech --piper --kokoro "
        "--sentence-mix --average-last --bf16 --time-reduction"
    ).split()
    dests = {flag: flag[2:].replace("-", "_") for flag in flags}
    return [flag for flag, d in dests.items() if getattr(args, d) != parser.get_default(d)]


def _sentence_mix(text: str) -> tuple[float, float] | None:
    """``"0.5,0.35"`` -> (0.5, 0.35); None unless two shares in [0, 1] adding up to <= 1."""
    try:
        templates, sequences = (float(x) for x in text.split(","))
    except ValueError:
        return None
    shares_ok = 0.0 <= templates <= 1.0 and 0.0 <= sequences <= 1.0
    return (templates, sequences) if shares_ok and templates + sequences <= 1.0 else None


if __name__ == "__main__":
    sys.exit(main())
