"""Put other seeds of a bundle's recipe into its card: how far runs of one recipe differ.

``python -m edge_asr.training.seeds BUNDLE OTHER/metrics.json …`` checks that every other run
used the same recipe (everything but the seed), stores their scores in the bundle's
``metrics.json`` (``seed_runs``) and renders its ``MODEL_CARD.md`` again with a table of all
seeds and their mean, so one run's luck is not presented as the recipe's result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge_asr.training import card

# Training fields that belong to the recipe; the seed and what the run measured do not.
RECIPE_TRAINING = ("config", "planned_steps", "max_minutes", "threads", "average_last", "bf16")


class SeedRunError(ValueError):
    """Other runs cannot join the bundle's card: unreadable, another recipe, or a seed twice."""


def recipe(m: dict[str, Any]) -> dict[str, Any]:
    """Everything a run was made with but its seed, flat: "part field" -> value."""
    tr = m["training"]
    parts = {
        "training": {k: tr.get(k) for k in RECIPE_TRAINING},
        "augment": tr.get("augment") or {},
        "data plan": m["data"]["plan"],
        "model": {k: m["model"].get(k) for k in ("hidden", "utterance_cmn", "vocab_size")},
    }
    return {
        f"{part} {key}": value for part, fields in parts.items() for key, value in fields.items()
    }


def check_same_recipe(bundle: dict[str, Any], other: dict[str, Any], name: str) -> None:
    want, got = recipe(bundle), recipe(other)
    for key in sorted(want.keys() | got.keys()):
        if want.get(key) != got.get(key):
            raise SeedRunError(
                f"{name}: another recipe than the bundle's ({key} {got.get(key)!r}, "
                f"the bundle's {want.get(key)!r})"
            )


def attach(bundle_dir: Path, others: list[Path]) -> dict[str, Any]:
    """Store the other runs' rows in the bundle's metrics and render its card again."""
    path = bundle_dir / "metrics.json"
    metrics = _load(path)
    own = metrics["training"]["seed"]
    rows: list[dict[str, Any]] = []
    for other_path in others:
        other = _load(other_path)
        check_same_recipe(metrics, other, str(other_path))
        seed = other["training"]["seed"]
        if seed == own:
            raise SeedRunError(f"{other_path}: seed {seed} is the bundle's own")
        if any(r["seed"] == seed for r in rows):
            raise SeedRunError(f"{other_path}: seed {seed} is given twice")
        rows.append(card.seed_row(other))
    metrics["seed_runs"] = sorted(rows, key=lambda r: r["seed"])
    card.write(bundle_dir, metrics)
    return metrics


def _load(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SeedRunError(f"{path}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise SeedRunError(f"{path}: not JSON ({exc})") from None
    keys = ("training", "wer", "data", "model", "export_eval_minutes")
    if not isinstance(value, dict) or any(k not in value for k in keys):
        raise SeedRunError(f"{path}: not a training run's metrics.json")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_asr.training.seeds", description=__doc__)
    parser.add_argument("bundle", type=Path, help="the bundle folder (metrics.json, MODEL_CARD.md)")
    parser.add_argument("others", type=Path, nargs="+", help="other seeds' metrics.json files")
    args = parser.parse_args(argv)
    try:
        metrics = attach(args.bundle, args.others)
    except SeedRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seeds = [metrics["training"]["seed"], *(r["seed"] for r in metrics["seed_runs"])]
    print(f"{args.bundle / 'MODEL_CARD.md'}: seeds {', '.join(map(str, sorted(seeds)))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
