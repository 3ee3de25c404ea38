"""Derived measures: symptom totals from items, session index and weeks, per-patient outcomes
(dropout, response, remission, relapse follow-up), the participant flow and which optional
measures the data supports (availability.json, read by the model stage to skip analyses).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from alliance.clean.disclosure import protect_flow
from alliance.clean.problems import Problems
from alliance.errors import ConfigError
from alliance.instruments.items import keyed_items, score_items
from alliance.settings import AllianceSettings, DropoutSettings, PrivacySettings, SymptomSettings


def score_symptoms(
    s: pd.DataFrame, symptoms: SymptomSettings, alliance: AllianceSettings
) -> pd.DataFrame:
    """Total symptom score from items when the export has no total column."""
    if "symptom" in s or not symptoms.items:
        return s
    if not symptoms.instrument:
        raise ConfigError("config key symptoms.instrument: needed to score symptom items")
    inst = alliance.instrument(symptoms.instrument)
    cols = {int(c[-2:]): c for c in s.columns if c.startswith("item_symptom_")}
    keyed = keyed_items(s, cols, inst)
    s = s.copy()
    s["symptom"], _ = score_items(keyed, inst.items, inst)
    return s


def derive(
    s: pd.DataFrame, p: pd.DataFrame, symptoms: SymptomSettings, dropout: DropoutSettings
) -> tuple[pd.DataFrame, ...]:
    """Session index, weeks, baseline, last session, dropout, response, remission, relapse."""
    s = s.sort_values(["patient", "session"]).reset_index(drop=True)
    s["session_index"] = s.groupby("patient").cumcount() + 1
    if "week" in s:
        s["weeks"] = s["week"].astype(float)
    elif "date" in s:
        first = s.groupby("patient")["date"].transform("min")
        s["weeks"] = (s["date"] - first).dt.days / 7.0
    else:
        first = s.groupby("patient")["session"].transform("min")
        s["weeks"] = (s["session"] - first).astype(float)
    g = s.groupby("patient")
    per = pd.DataFrame(
        {
            "n_sessions": g.size(),
            "first_session": g["session"].min(),
            "last_session": g["session"].max(),
        }
    )
    if "symptom" in s:
        has = s.dropna(subset=["symptom"]).groupby("patient")
        per["first_symptom"] = has["symptom"].first()
        per["final_symptom"] = has["symptom"].last()
    p = p.merge(per, left_on="patient", right_index=True, how="left")
    p["n_sessions"] = p["n_sessions"].fillna(0).astype("int64")
    p["started"] = (p["n_sessions"] > 0).astype("int64")
    # The baseline is a pre-treatment score only. The session-1 score is an outcome row (it
    # already carries the alliance effect): without a baseline column the covariate is missing
    # (models drop it with a note) and change is measured from the first session instead.
    if "baseline_symptom" not in p:
        p["baseline_symptom"] = np.nan
    s["baseline_symptom"] = s["patient"].map(p.set_index("patient")["baseline_symptom"])
    pretreatment = bool(p["baseline_symptom"].notna().any())
    reference = "baseline_symptom" if pretreatment else "first_symptom"
    # Dropout.
    if dropout.rule == "status" and "status" in p:
        p["dropout"] = (p["status"] == "dropout").astype("Int64")
        p.loc[p["status"].isna() | (p["started"] == 0), "dropout"] = pd.NA
        p["dropout_rule"] = "status"
    else:
        planned = p["status"].eq("completed") if "status" in p else False
        short = p["n_sessions"] < dropout.min_sessions
        p["dropout"] = (short & ~planned).astype("Int64")
        p.loc[p["started"] == 0, "dropout"] = pd.NA
        p["dropout_rule"] = f"fewer than {dropout.min_sessions} sessions"
    p["completed"] = (1 - p["dropout"]).astype("Int64")
    # Response and remission (among completers and dropouts alike: last observation).
    if "final_symptom" in p:
        start = p[reference]
        sign = 1 if symptoms.higher_is_worse else -1
        reduction = sign * (start - p["final_symptom"]) / start
        p["symptom_change"] = p["final_symptom"] - start
        p["change_from"] = "pre-treatment baseline" if pretreatment else "first session"
        p["response"] = (reduction >= symptoms.response_reduction).astype("Int64")
        p.loc[p["final_symptom"].isna() | start.isna(), "response"] = pd.NA
        if symptoms.remission_cutoff is not None:
            p["remission"] = (p["final_symptom"] <= symptoms.remission_cutoff).astype("Int64")
            p.loc[p["final_symptom"].isna(), "remission"] = pd.NA
    # Relapse follow-up only for responders.
    # Relapse follow-up: responders (by default only those who completed acute treatment; a
    # dropout's "response" is a last observation); time is clocked from the end of acute treatment.
    if "relapse_time" in p and "response" in p:
        eligible = p["response"].fillna(0) == 1
        if symptoms.relapse_population == "completer_responders":
            eligible &= p["completed"].fillna(0) == 1
        p["relapse_followed"] = (eligible & p["relapse_time"].notna()).astype("int64")
        p.loc[~eligible, ["relapse_time", "relapse_event"]] = np.nan
    if "suicidality" in s:
        item = s["suicidality"]
        thr = symptoms.suicidality_threshold
        s["ideation"] = (item >= thr).astype("Int64").where(item.notna())
        for k in range(1, int(symptoms.suicidality_max) + 1):
            s[f"ideation_ge{k}"] = (item >= k).astype("Int64").where(item.notna())
        if "symptom" in s:
            # severity without the item itself (HAM-D item 3 is part of the total)
            s["symptom_rest"] = s["symptom"] - item
    return s, p


def flow_table(
    p: pd.DataFrame, s: pd.DataFrame, problems: Problems, privacy: PrivacySettings | None = None
) -> pd.DataFrame:
    """CONSORT-style flow: assessed -> randomised per arm -> ... -> followed for relapse.

    Exact counts, unless `privacy.suppress_small_cells` (then `disclosure.protect_flow`)."""
    rows: list[dict[str, Any]] = []

    def add(step: str, n: int, arm: str = "all", note: str = "") -> None:
        rows.append({"step": step, "arm": arm, "n": int(n), "note": note})

    add("assessed", len(p))
    rand = p[p["arm"].notna()] if "arm" in p else p
    add("randomised", len(rand), note="" if "arm" in p else "no arm column: all counted")
    arms = sorted(rand["arm"].dropna().unique()) if "arm" in rand else []
    groups = [("all", rand)] + [(a, rand[rand["arm"] == a]) for a in arms]
    for arm, g in groups:
        if arm != "all":
            add("randomised", len(g), arm)
        add("started", int(g["started"].sum()), arm)
        add("not started", int((g["started"] == 0).sum()), arm)
        add("completed", int((g["dropout"] == 0).sum()), arm)
        add("dropped out", int((g["dropout"] == 1).sum()), arm)
        if "response" in g:
            add("responders", int((g["response"] == 1).sum()), arm)
        if "response" in g and "completed" in g:
            both = (g["response"] == 1) & (g["completed"] == 1)
            add("completer responders", int(both.sum()), arm)
        if "relapse_followed" in g:
            add("followed for relapse", int(g["relapse_followed"].sum()), arm)
    dropped = [r for r in problems.rows if r["action"] == "drop_row"]
    add("session rows removed by checks", len(dropped), note="see validation.csv")
    add("session rows analysed", len(s))
    if privacy is not None and privacy.suppress_small_cells:
        return protect_flow(pd.DataFrame(rows), privacy.min_cell)
    return pd.DataFrame(rows)


def availability(
    s: pd.DataFrame,
    p: pd.DataFrame,
    rater_specs: Mapping[str, Mapping[str, str] | None],
    personality: Mapping[str, str],
) -> dict[str, Any]:
    """Which optional measures exist, with the reason when one does not (skipped analyses).

    `rater_specs`: alliance.raters (a rater set to null is 'not configured'); `personality`:
    columns.personality.
    """

    def state(ok: bool, reason: str) -> dict[str, Any]:
        return {"available": bool(ok), "reason": "" if ok else reason}

    raters = {}
    for rater, spec in rater_specs.items():
        items = [c for c in s.columns if c.startswith(f"item_{rater}_")]
        has = bool(items) and s[items].notna().any().any()
        why = "not configured" if not spec else "no item responses in the data"
        raters[rater] = state(has, f"{rater}-rated alliance: {why}")
    n_ther = p["therapist"].nunique() if "therapist" in p else 0
    avail = {
        "therapist": state(n_ther >= 2, "no therapist IDs (columns.therapist not mapped or empty)"),
        "site": state("site" in p and p["site"].nunique() >= 2, "fewer than two sites"),
        "arm": state("arm" in p and p["arm"].nunique() >= 2, "fewer than two arms"),
        "modality": state("telehealth" in p and p["telehealth"].nunique() == 2,
                          "no modality contrast (in-person vs telehealth)"),
        "agency": state("agency" in p and p["agency"].notna().any(), "no agency measure"),
        "personality": state(bool(personality), "no personality measures"),
        "suicidality": state("ideation" in s and s["ideation"].notna().any(),
                             "no suicidality item"),
        "dropout": state("dropout" in p and p["dropout"].nunique() == 2, "no dropout variation"),
        "relapse": state(
            "relapse_followed" in p and p["relapse_followed"].sum() > 0,
            "no relapse follow-up (columns.relapse_time / relapse_event) for responders",
        ),
        "symptom": state("symptom" in s and s["symptom"].notna().any(), "no symptom scores"),
        "raters": raters,
        "n_therapists": int(n_ther),
    }  # fmt: skip
    if n_ther and n_ther < 10:
        avail["therapist"]["note"] = (
            f"only {n_ther} therapists: three-level SEs are biased; "
            "prefer two-level + cluster-robust"
        )
    return avail
