"""``make soak``: run the daemon for a long time on the virtual microphone and report RSS growth.

    python -m benchmarks.soak [--minutes 60] [--every 10] [--sample 30] [--out FILE]

A private mosquitto and PulseAudio (as in ``make bench``); a held-out voice speaks a command
every ``--every`` seconds; the daemon's resident memory is sampled every ``--sample`` seconds.
Growth is measured from the first sample after warm-up (the first utterances allocate what
the recognizer needs) to the end, and as a least-squares slope in MB per hour.
Goal: at most 5 MB over an hour. Not part of CI (it takes as long as you ask).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.files import make_clips
from benchmarks.live import TranscriptSubscriber, live_rig, running_daemon

HERE = Path(__file__).resolve().parent
GOAL_MB_PER_HOUR = 5.0
WARM_UP_UTTERANCES = 3


@dataclass
class SoakResult:
    minutes: float
    utterances_spoken: int
    transcripts_received: int
    rss_start_mb: float  # after warm-up
    rss_end_mb: float
    rss_peak_mb: float
    growth_mb: float
    slope_mb_per_hour: float
    cpu_percent: float  # of one core, over the whole run
    samples: list[tuple[float, float]]  # (seconds since warm-up, RSS MB)

    @property
    def meets_goal(self) -> bool:
        return self.slope_mb_per_hour <= GOAL_MB_PER_HOUR


def soak(minutes: float, every_s: float, sample_s: float) -> SoakResult:
    clips = make_clips(HERE / ".cache")  # shared with make bench
    with live_rig() as (broker, pulse, folder):
        wavs = []
        for i, clip in enumerate(clips[:12]):
            path = folder / f"say{i}.wav"
            padded = np.concatenate([clip.samples, np.zeros(16000, np.float32)])
            sf.write(str(path), padded, 16000, subtype="PCM_16")
            wavs.append(path)
        subscriber = TranscriptSubscriber(broker)
        try:
            with running_daemon(broker, pulse, folder, "soak") as (daemon, _):
                for wav in wavs[:WARM_UP_UTTERANCES]:
                    pulse.play(wav)
                spoken = WARM_UP_UTTERANCES
                started = time.monotonic()
                cpu_start = daemon.cpu_seconds()
                samples = [(0.0, daemon.memory_mb()["rss_mb"])]
                next_say = started + every_s
                next_sample = started + sample_s
                end = started + minutes * 60
                while (now := time.monotonic()) < end:
                    if now >= next_say:
                        pulse.play(wavs[spoken % len(wavs)])
                        spoken += 1
                        next_say += every_s
                    if now >= next_sample:
                        samples.append((now - started, daemon.memory_mb()["rss_mb"]))
                        next_sample += sample_s
                        _progress(samples[-1], minutes)
                    time.sleep(max(0.0, min(next_say, next_sample, end) - time.monotonic()))
                elapsed = time.monotonic() - started
                cpu = 100.0 * (daemon.cpu_seconds() - cpu_start) / elapsed
                memory = daemon.memory_mb()
                samples.append((elapsed, memory["rss_mb"]))
                time.sleep(2.0)  # the last transcript reaches the subscriber
                received = len(subscriber.finals)
        finally:
            subscriber.close()
    t = np.array([s[0] for s in samples]) / 3600.0
    rss = np.array([s[1] for s in samples])
    slope = float(np.polyfit(t, rss, 1)[0]) if len(samples) >= 3 and t[-1] > 0 else 0.0
    return SoakResult(
        minutes=round(elapsed / 60, 2),
        utterances_spoken=spoken,
        transcripts_received=received,
        rss_start_mb=round(float(rss[0]), 1),
        rss_end_mb=round(float(rss[-1]), 1),
        rss_peak_mb=round(memory["peak_rss_mb"], 1),
        growth_mb=round(float(rss[-1] - rss[0]), 2),
        slope_mb_per_hour=round(slope, 2),
        cpu_percent=round(cpu, 2),
        samples=[(round(a, 1), round(b, 2)) for a, b in samples],
    )


def _progress(sample: tuple[float, float], minutes: float) -> None:
    print(f"  {sample[0] / 60:6.1f} / {minutes:g} min: RSS {sample[1]:.1f} MB", file=sys.stderr)


def table(result: SoakResult) -> str:
    verdict = "met" if result.meets_goal else "MISSED"
    rows = [
        ("duration", f"{result.minutes:g} min"),
        (
            "utterances spoken / transcripts received",
            f"{result.utterances_spoken} / {result.transcripts_received}",
        ),
        ("RSS after warm-up", f"{result.rss_start_mb} MB"),
        ("RSS at the end", f"{result.rss_end_mb} MB"),
        ("peak RSS", f"{result.rss_peak_mb} MB"),
        ("growth", f"{result.growth_mb:+} MB"),
        (
            "trend",
            f"{result.slope_mb_per_hour:+} MB/hour (goal <= {GOAL_MB_PER_HOUR:g}: {verdict})",
        ),
        ("CPU", f"{result.cpu_percent} % of one core"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=60.0, help="how long (default: 60)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between commands")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between RSS samples")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.every <= 0 or args.sample <= 0:
        parser.error("--minutes, --every and --sample must be positive")
    result = soak(args.minutes, args.every, args.sample)
    print(table(result))
    if args.out:
        args.out.write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
    return 0 if result.transcripts_received >= result.utterances_spoken else 1


if __name__ == "__main__":
    sys.exit(main())
