"""The overview page tells the reader, per model, its note and caveats, and per figure its caption
with the note and caveats of the model it is drawn from; all of it escaped (config text is
untrusted input)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
from test_figures import config

from alliance import files
from alliance.render.notes import is_sensitivity, model_caveats, model_details, model_note
from alliance.render.stage import overview_html

NOTE = 'Rows start at session 2 <script>alert("x")</script> & $\\input{x}$.'
PAGE_TAGS = {"html", "head", "meta", "style", "body", "h2", "h3", "p", "table", "tr", "th", "td",
             "ul", "li"}  # fmt: skip


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _results(root: Path) -> Path:
    results = root / "results"
    (results / "clean").mkdir(parents=True)
    avail = {"summary": {"patients": 40, "arms": ["A", "B"], "problems": 0}}
    (results / "clean" / "availability.json").write_text(json.dumps(avail))
    flow = pd.DataFrame({"step": ["randomised"] * 2, "arm": ["A", "B"], "n": [20, 20]})
    files.write_csv(flow, results / "clean" / "flow.csv")
    fits = {
        "symptoms_growth": {
            "kind": "lmm", "status": "fitted", "reason": "", "n_obs": 300, "note": NOTE,
            "singular": True, "warnings": [],
            "frame": {"dropped_terms": [{"term": "baseline_symptom",
                                         "reason": "'baseline_symptom' is missing on every row"}],
                      "notes": ["arm reference level PLA (config)"]},
        },
        "mediation_personality": {
            "kind": "mediation", "status": "fitted", "reason": "", "n_obs": 80,
            "warnings": ["proportion mediated not reported for openness: the total effect's "
                         "interval includes 0"],
        },
        "suicidality_any": {"kind": "glmm", "status": "fitted", "reason": "", "n_obs": 300,
                            "sensitivity": True},
        "relapse_cox": {"kind": "cox", "status": "skipped", "reason": "too few events (3)"},
    }  # fmt: skip
    for model, fit in fits.items():
        (results / "models" / model).mkdir(parents=True)
        (results / "models" / model / "fit.json").write_text(json.dumps(fit))
    return results


def test_notes_and_caveats_are_read_from_fit_json() -> None:
    dropped = [{"term": "x", "reason": "missing on every row"}]
    fit = {"note": "  two\n lines ", "warnings": ["w1", "w1"], "converged": False,
           "frame": {"dropped_terms": dropped}}  # fmt: skip
    assert model_note(fit) == "two lines"
    assert model_caveats(fit) == ["term x left out: missing on every row", "w1",
                                  "the fit did not converge"]  # fmt: skip
    assert model_note(None) == "" and model_caveats({}) == []
    assert is_sensitivity({"sensitivity": True}) and not is_sensitivity({"note": "x"})
    assert is_sensitivity({"options": {"sensitivity": True}})
    assert model_details({"notes": ["Waves are\n sessions 1-8.", ""]}) == [
        "Waves are sessions 1-8."
    ]


def test_overview_shows_every_note_and_caveat_escaped(tmp_path: Path) -> None:
    results = _results(tmp_path)
    figures = {
        "symptom_trajectories": ["symptom_trajectories.png", "symptom_trajectories.svg"],
        "forest": ["forest.png", "forest.svg"],
        "km_relapse": "skipped: model skipped",
    }
    page = overview_html(results, config(), figures)
    parsed = _Page()
    parsed.feed(page)
    assert parsed.tags <= PAGE_TAGS  # the note's <script> is text, not a tag
    text = "".join(parsed.text)
    assert f"symptoms_growth: {' '.join(NOTE.split())}" in text  # the model notes list
    assert "term baseline_symptom left out: 'baseline_symptom' is missing on every row" in text
    assert "arm reference level PLA (config)" in text
    assert "singular fit" in text
    assert "proportion mediated not reported for openness" in text
    assert "glmm, sensitivity analysis" in text
    assert "too few events (3)" in text
    # the growth figure's caption carries its model's note and caveats
    caption = next(t for t in parsed.text if t.startswith("symptom_trajectories ("))
    assert f"Model note (symptoms_growth): {NOTE}" in caption
    assert "Caveats (symptoms_growth): term baseline_symptom left out" in caption
    forest = next(t for t in parsed.text if t.startswith("forest ("))
    assert "Not drawn, sensitivity analyses (see the model tables): suicidality_any." in forest
    assert "<script>" not in page.split("<body>")[1]
