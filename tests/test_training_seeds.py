"""python -m edge_asr.training.seeds: other seeds of a bundle's recipe in its card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="needs the [train] extra")

from edge_asr.training import card, seeds  # noqa: E402

BUILTIN = Path(__file__).parents[1] / "edge_asr" / "models" / "home-en"


def run_metrics(seed: int, flite: float, steps: int = 24000) -> dict[str, Any]:
    m = json.loads((BUILTIN / "metrics.json").read_text(encoding="utf-8"))
    m.pop("seed_runs", None)
    m["training"].update(seed=seed, steps=steps)
    m["wer"]["flite_heldout"]["int8"]["vocab_wer"] = flite
    return m


def write(path: Path, m: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(m), encoding="utf-8")
    return path


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    shutil.copy(BUILTIN / "MODEL_CARD.md", folder)
    write(folder / "metrics.json", run_metrics(0, 11.2))
    return folder


def table_rows(text: str) -> list[list[str]]:
    section = text.split("## Other seeds of this recipe", 1)[1].split("## Goals", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows]


def test_the_card_shows_every_seed_and_the_mean(bundle: Path, tmp_path: Path) -> None:
    others = [
        write(tmp_path / "s2" / "metrics.json", run_metrics(2, 12.0, steps=23000)),
        write(tmp_path / "s1" / "metrics.json", run_metrics(1, 13.3)),
    ]
    seeds.attach(bundle, others)
    metrics = json.loads((bundle / "metrics.json").read_text(encoding="utf-8"))
    assert [r["seed"] for r in metrics["seed_runs"]] == [1, 2]
    assert metrics["seed_runs"][1]["steps"] == 23000
    text = (bundle / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert text == card.render(metrics)
    assert "The same command with 2 other seeds" in text
    rows = table_rows(text)
    header, body = rows[0], rows[2:]
    flite = header.index("flite")
    assert [r[0] for r in body] == ["**0 (this bundle)**", "1", "2", "mean"]
    assert [r[flite] for r in body] == ["11.2", "13.3", "12.0", "12.2"]
    assert body[2][1] == "23,000"
    espeak = header.index("espeak-ng held-out")
    assert body[3][espeak] == body[0][espeak]  # the same score thrice: its own mean
    assert "On flite, this bundle is the best." in text


def test_a_seed_entered_from_its_log_shows_what_was_recorded_and_says_so() -> None:
    metrics = run_metrics(1, 6.3)
    metrics["seed_runs"] = [
        {
            "seed": 0,
            "steps": 14298,
            "minutes": None,
            "wer": {"flite_heldout": 7.7, "espeak_heldout": 1.4},
            "note": "scores to one decimal from the run's log.",
        }
    ]
    text = card.render(metrics)
    rows = table_rows(text)
    header, body = rows[0], rows[2:]
    flite, commands = header.index("flite"), header.index("flite commands")
    assert body[0][:3] == ["0", "14,298", ""]
    assert body[0][commands] == ""
    assert body[2][flite] == "7.0"  # (7.7 + 6.3) / 2: both seeds
    assert body[2][commands] == f"{body[1][commands]} (1 seed)"
    assert "\n\nSeed 0: scores to one decimal from the run's log.\n" in text


@pytest.mark.parametrize(
    ("flites", "place"),
    [
        ([13.3, 10.0], "the median"),
        ([10.0, 9.0], "the worst"),
        ([11.2, 11.2], "the same as every other seed"),
        ([13.0, 10.0, 9.0], "number 3 of 4, best first"),
    ],
)
def test_the_card_says_where_the_bundle_stands_on_flite(
    bundle: Path, tmp_path: Path, flites: list[float], place: str
) -> None:
    others = [
        write(tmp_path / f"s{seed}" / "metrics.json", run_metrics(seed, flite))
        for seed, flite in enumerate(flites, start=1)
    ]
    seeds.attach(bundle, others)
    text = (bundle / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"On flite, this bundle is {place}." in text


def test_without_other_seeds_the_card_has_no_seed_table() -> None:
    metrics = json.loads((BUILTIN / "metrics.json").read_text(encoding="utf-8"))
    metrics.pop("seed_runs", None)
    assert "## Other seeds" not in card.render(metrics)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda m: m["data"]["plan"].update(piper=m["data"]["plan"]["piper"] + 1000),
            "data plan piper",
        ),
        (
            lambda m: m["training"].update(max_minutes=m["training"]["max_minutes"] + 5),
            "training max_minutes",
        ),
        (lambda m: m["training"].update(bf16=not m["training"]["bf16"]), "training bf16"),
        (lambda m: m["model"].update(hidden=m["model"]["hidden"] + 64), "model hidden"),
    ],
)
def test_another_recipe_is_refused_by_name(
    bundle: Path, tmp_path: Path, change: Any, named: str
) -> None:
    other = run_metrics(1, 12.0)
    change(other)
    theirs, ours = seeds.recipe(other)[named], seeds.recipe(run_metrics(0, 11.2))[named]
    assert theirs != ours
    path = write(tmp_path / "s1" / "metrics.json", other)
    before = (bundle / "MODEL_CARD.md").read_text(encoding="utf-8")
    with pytest.raises(seeds.SeedRunError) as raised:
        seeds.attach(bundle, [path])
    assert f"another recipe than the bundle's ({named} {theirs!r}, the bundle's {ours!r})" in str(
        raised.value
    )
    assert (bundle / "MODEL_CARD.md").read_text(encoding="utf-8") == before  # untouched


@pytest.mark.parametrize(
    ("others", "message"),
    [
        (lambda d: [write(d / "a.json", run_metrics(0, 12.0))], "seed 0 is the bundle's own"),
        (
            lambda d: [
                write(d / "a.json", run_metrics(1, 12.0)),
                write(d / "b.json", run_metrics(1, 13.0)),
            ],
            "seed 1 is given twice",
        ),
        (
            lambda d: [d / "missing.json"],
            "missing.json: cannot read it (No such file or directory)",
        ),
        (lambda d: [write(d / "x.json", {"wer": {}})], "x.json: not a training run's metrics.json"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    bundle: Path, tmp_path: Path, others: Any, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [str(p) for p in others(tmp_path)]
    assert seeds.main([str(bundle), *paths]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert "seed_runs" not in json.loads((bundle / "metrics.json").read_text(encoding="utf-8"))
