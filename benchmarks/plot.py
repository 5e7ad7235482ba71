"""The benchmark's picture: latency distribution and real-time factor per engine, from the JSON.

python -m benchmarks.plot [benchmarks/results/latest.json] [--out latest.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def plot(data: dict[str, Any], out: Path) -> Path:
    """Write a PNG with a panel for each section present (latency, files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [key for key in ("latency", "files") if key in data]
    if not panels:
        raise ValueError("no latency or files section to plot")
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.2), squeeze=False)
    for ax, key in zip(axes[0], panels, strict=True):
        if key == "latency":
            _latency(ax, data["latency"])
        else:
            _rtf(ax, data["files"])
    machine = data.get("machine", {})
    fig.suptitle(
        f"edge-asr benchmark, {machine.get('date', '?')[:10]}, {machine.get('cpu', '?')} "
        f"({machine.get('machine', '?')}, {machine.get('cores', '?')} cores)",
        fontsize=9,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _latency(ax: Any, latency: dict[str, Any]) -> None:
    import matplotlib.ticker

    values = [s["latency_ms"] for s in latency["samples"]]
    hangover, goal = latency["hangover_ms"], latency["goal_p95_ms"]
    ax.hist(values, bins=20, color="#4477aa", edgecolor="white")
    for x, label, style in (
        (hangover, f"VAD hangover {hangover} ms", ":"),
        (goal, f"goal p95 ≤ {goal} ms", "--"),
        (latency["p50_ms"], f"p50 {latency['p50_ms']:.0f} ms", "-"),
        (latency["p95_ms"], f"p95 {latency['p95_ms']:.0f} ms", "-."),
    ):
        color = "black" if style in (":", "--") else "#cc3311"
        ax.axvline(x, color=color, linestyle=style, label=label)
    ax.set_xlabel("end of speech → subscriber has the final transcript (ms)")
    ax.set_ylabel("utterances")
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_title(f"Latency through PulseAudio → daemon → mosquitto ({len(values)} utterances)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)


def _rtf(ax: Any, files: dict[str, Any]) -> None:
    import matplotlib.ticker

    engines = files["engines"]
    names = [e["name"] for e in engines]
    rtfs = [e["rtf"] for e in engines]
    colors = ["#4477aa" if n.startswith("edge-asr") else "#bbbbbb" for n in names]
    bars = ax.barh(names, rtfs, color=colors)
    ax.set_xscale("log")
    ax.invert_yaxis()
    for bar, rtf, engine in zip(bars, rtfs, engines, strict=True):
        ax.text(
            bar.get_width() * 1.08,
            bar.get_y() + bar.get_height() / 2,
            f"{rtf:.4f}  (WER {engine['wer']:.0%})",
            va="center",
            fontsize=8,
        )
    ax.set_xlim(min(rtfs) / 2, max(rtfs) * 12)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("real-time factor, one thread (log scale; lower is faster)")
    ax.set_title(f"File transcription: {files['clips']} clips, same audio for every engine")
    ax.title.set_fontsize(9)
    ax.tick_params(axis="y", labelsize=8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="?", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.png")
    args = parser.parse_args(argv)
    print(plot(json.loads(args.json.read_text()), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
