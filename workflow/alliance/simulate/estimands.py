"""What each default model's key term should recover from a simulated trial (`truth["estimands"]`).

Why: a parameter-recovery check is only meaningful against the value the model actually
targets. One entry per default model key term (docs/estimands.md): the generating value it
identifies, or the closest generating value and the reason it is not identified. Entries:
{"model", "term", "value" (float or None), "identified", "reason", "parameter"}.
"""

from __future__ import annotations

from typing import Any

PLACEBO = "PLA-CM"  # reference arm of the default models (codings.arm_reference / first placebo)
EARLY_WINDOW_END = 3  # w of the landmark models: score.early_window's default, [1, 3]


def _entry(
    model: str, term: str, value: float | None, identified: bool, parameter: str, reason: str
) -> dict[str, Any]:
    return {
        "model": model,
        "term": term,
        "value": None if value is None else float(f"{float(value):.9g}"),
        "identified": identified,
        "reason": reason,
        "parameter": parameter,
    }


def _mean_multiplier(truth: dict[str, Any]) -> float:
    """beta_P_arm_multiplier averaged over the randomised patients' arms (agency at 0)."""
    mult = truth["params"]["beta_P_arm_multiplier"]
    counts = truth["design"]["arm_counts"]
    total = sum(counts.values())
    return sum(mult[a] * k for a, k in counts.items()) / total


def _riclpm(p: dict[str, Any], c: float) -> list[dict[str, Any]]:
    why = (
        "the RI-CLPM's within part is the generating VAR(1) of (wA, wY) (ruptures and sudden "
        "gains are innovation shocks that decay through it): with the alliance measurement "
        "error fixed from item reliability, the HAM-D rounding error at 1/12, innovation "
        "variances free per session (ruptures and gains start at session 3) and a random "
        "symptom slope (the generated trajectories have one) it recovers {what}"
    )
    scale = (
        f"; the model measures the alliance in observed WAI points, and the true score bends at "
        f"the item floor and ceiling: {c:.4f} observed per latent point within patients "
        f"(alliance.observed_score_reliability.scale_within), so the path is {{how}}"
    )
    rows = [
        ("alliance_to_symptom", "beta_lag", p["beta_lag"] / c, "beta_lag / scale_within",
         "the cross-lagged path wA_{t-1} -> wY_t", scale.format(how="beta_lag / scale")),
        ("symptom_to_alliance", "gamma_lag", p["gamma_lag"] * c, "gamma_lag * scale_within",
         "the cross-lagged path wY_{t-1} -> wA_t", scale.format(how="gamma_lag x scale")),
        ("alliance_ar", "alliance_ar1", p["alliance_ar1"], "alliance_ar1",
         "the alliance autoregression", ""),
        ("symptom_ar", "lag_phi", p["lag_phi"], "lag_phi", "the symptom autoregression", ""),
    ]  # fmt: skip
    return [
        _entry("symptoms_riclpm", term, value, True, param, why.format(what=what) + extra)
        for term, _, value, param, what, extra in rows
    ]


def _prior_parts(p: dict[str, Any], m: float, models: tuple[str, ...]) -> list[dict[str, Any]]:
    """Prior-only ther / pat / within terms of the growth and lagged symptom models."""
    out = []
    for model in models:
        lagged = model.startswith("symptoms_lagged")
        detrended = model.endswith("detrended")
        within = "alliance_within_dt_prior" if detrended else "alliance_within_prior"
        bias = (
            "a lagged outcome with person-centred predictors carries dynamic-panel (Nickell) "
            "bias, and conditional on last session's symptoms a between effect is only its "
            "short-run part"
            if lagged
            else "the running means are error-laden, their reliability grows with t, and the "
            "model has no symptom lag, so the parts absorb the within-person dynamics"
        )
        out += [
            _entry(
                model, "alliance_ther_prior", p["beta_T"], False, "beta_T",
                f"beta_T is the effect of the latent therapist deviation A_T on the symptom "
                f"level; the therapist part of prior running means is a noisy proxy of it and "
                f"{bias}",
            ),
            _entry(
                model, "alliance_pat_prior", p["beta_P"] * m, False,
                "beta_P x mean beta_P_arm_multiplier",
                f"beta_P (x the arm-averaged multiplier) is the effect of the latent patient "
                f"deviation A_P on the symptom level; the prior patient part mixes A_P with "
                f"past within states and item error, and {bias}",
            ),
            _entry(
                model, within, p["beta_lag"], False, "beta_lag",
                f"beta_lag is the within-person effect of wA_{{t-1}} on next symptoms; "
                f"A_{{t-1}} minus a running mean (or own line) is not wA_{{t-1}} (item error, "
                f"centring on an error-laden mean, and the symptom-to-alliance path leaks in), "
                f"and {bias}",
            ),
        ]  # fmt: skip
        if not lagged:
            out.append(
                _entry(
                    model,
                    "weeks:alliance_pat_prior",
                    p["beta_tP"] * m,
                    False,
                    "beta_tP x mean beta_P_arm_multiplier",
                    "beta_tP (x the arm-averaged multiplier) is how A_P changes the symptom "
                    "slope; the prior patient part is an error-laden running mean whose "
                    "reliability grows with t, which tilts the interaction",
                )  # fmt: skip
            )
    return out


def _moderation(p: dict[str, Any], m: float) -> list[dict[str, Any]]:
    mult = p["beta_P_arm_multiplier"][PLACEBO]
    kappa = p["agency_moderation"]
    desc = "descriptive moderation on error-laden prior-only parts"
    return [
        _entry(
            "symptoms_by_arm", "alliance_pat_prior", p["beta_P"] * mult, False,
            "beta_P x beta_P_arm_multiplier[PLA-CM]",
            f"the slope in the reference arm (placebo) is beta_P x its multiplier plus the "
            f"averaged slope part beta_tP x t; {desc}",
        ),
        _entry(
            "symptoms_by_arm", "alliance_within_prior", p["beta_lag"], False, "beta_lag",
            f"the within effect is beta_lag in every arm (no arm moderation), but A_{{t-1}} "
            f"minus a running mean is not wA_{{t-1}}; {desc}",
        ),
        _entry(
            "symptoms_by_modality", "alliance_pat_prior:telehealth", 0.0, False, "none",
            f"the generating alliance effect does not differ by modality (telehealth_smd "
            f"shifts the alliance level only), so the true interaction is 0; {desc}",
        ),
        _entry(
            "symptoms_by_modality", "alliance_within_prior:telehealth", 0.0, False, "none",
            f"no modality moderation of the within path in the generating model; {desc}",
        ),
        _entry(
            "symptoms_by_agency", "alliance_pat_prior:agency", -kappa * p["beta_P"] * m, False,
            "-agency_moderation x beta_P x mean beta_P_arm_multiplier",
            f"beta_P and beta_tP are scaled by (1 - agency_moderation x agency), so per agency "
            f"z-point the level effect changes by -agency_moderation x beta_P (plus a slope "
            f"part growing with t); {desc}",
        ),
        _entry(
            "symptoms_by_agency", "alliance_within_prior:agency", 0.0, False, "none",
            f"agency does not moderate the within path beta_lag; {desc}",
        ),
    ]  # fmt: skip


def _outcomes(truth: dict[str, Any]) -> list[dict[str, Any]]:
    p = truth["params"]
    rel = truth["alliance"]["observed_score_reliability"]["session_score"]
    c_total = truth["alliance"]["observed_score_reliability"]["scale_total"]
    scale = truth["relapse"]["alliance_scale"]
    per_point = p["relapse_beta"] / scale if scale else None
    early = (
        "a landmark logistic model of leaving after the early window on the early mean is not "
        "the generating hazard on the alliance of the session just attended: early alliance is "
        "a proxy of the later alliance that drives leaving"
    )
    within = (
        "the generating ideation logit uses latent A_T + A_P and wA_{t-1}; the prior-only parts "
        "are error-laden running means (and the model adjusts for observed, not latent, "
        "severity)"
    )
    pooled, pooled_param, pooled_why = _pooled_dropout_slope(truth)
    relapse_param = "relapse_beta / relapse.alliance_scale"
    relapse_why = (
        f"the generating Cox covariate is the observed mean alliance of attended sessions "
        f"standardised among responders (SD {scale}, ddof 1, this trial), relapse clocked from "
        f"the last acute session, so per point the log-HR is relapse_beta / SD"
    )
    last_why = "the last session's alliance is not in the generating hazard (given the mean)"
    small = (
        "the Cox estimate (Firth or not) is consistent but, with a few dozen relapses for 6 "
        "terms, biased away from zero by O(1/relapses) (docs/estimands.md 'Relapse'; the part "
        "from the random risk sets Firth's penalty leaves)"
    )
    return [
        _entry(
            "dropout_hazard", "alliance", pooled / c_total, False, pooled_param,
            f"missing session t+1 is generated logit-linear in the latent alliance of session t "
            f"(the last attended), {c_total:.4f} observed points per latent point; "
            f"{pooled_why}; the observed score carries item error, so this naive estimate is "
            f"attenuated by about its reliability ({rel:.2f}): alliance_rc is the corrected one",
        ),
        _entry(
            "dropout_hazard", "alliance_rc", pooled / c_total, True, pooled_param,
            f"regression calibration of the same model: the coefficient per point of the true "
            f"score (the latent alliance on the observed scale, {c_total:.4f} observed points "
            f"per latent point); {pooled_why}",
        ),
        _entry("dropout_early_alliance", "alliance_early", p["dropout_beta_alliance"], False,
               "dropout_beta_alliance", early),
        _entry("dropout_gee", "alliance_early", p["dropout_beta_alliance"], False,
               "dropout_beta_alliance", early + " (population-averaged, further attenuated)"),
        _entry("relapse_cox", "alliance_mean", per_point, False, relapse_param,
               f"{relapse_why}; {small}: alliance_mean_bc is the corrected one"),
        _entry("relapse_cox", "alliance_mean_bc", per_point, True, relapse_param,
               f"bootstrap bias correction of the same estimate: {relapse_why}"),
        _entry("relapse_cox", "alliance_last", 0.0, False, "none",
               f"{last_why}; {small}: alliance_last_bc is the corrected one"),
        _entry("relapse_cox", "alliance_last_bc", 0.0, True, "none",
               f"bootstrap bias correction of the same estimate: {last_why}"),
        _entry("suicidality", "alliance_within_prior", p["suicide_b_within"], False,
               "suicide_b_within", within),
        _entry("suicidality", "alliance_pat_prior", p["suicide_b_between"], False,
               "suicide_b_between", within),
        _entry("suicidality", "alliance_ther_prior", p["suicide_b_between"], False,
               "suicide_b_between", within),
    ]  # fmt: skip


def _resistance(truth: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue #14's models: TRD moderation, missed sessions, adherence, reporting, ruptures."""
    p = truth["params"]
    c = truth["alliance"]["observed_score_reliability"]["scale_total"]
    rel = truth["alliance"]["observed_score_reliability"]["session_score"]
    low, high = truth["treatment_resistance"]["self_report_range"]
    per_pomp = 100.0 * p["phq_beta_alliance"] / (high - low)
    scale = f"{c:.4f} observed points per latent point (scale_total)"
    naive = (
        f"the observed score carries item error, so this naive slope is attenuated by about its "
        f"reliability ({rel:.2f}); the _rc row is the corrected one"
    )
    naive_within = (
        f"the observed score carries item error and the patient effect makes the fit lean on "
        f"within-patient differences, so this naive slope is attenuated below the score's "
        f"overall reliability ({rel:.2f}; within patients "
        f"{truth['alliance']['observed_score_reliability']['within_patient']:.2f}); the _rc row "
        f"is the corrected one"
    )
    att = p["beta_alliance_trd_attenuation"]
    m = _mean_multiplier(truth)
    trd_level = (
        f"among TRD patients the generating alliance effects on symptoms beta_T, beta_P and "
        f"beta_tP are scaled by 1 - beta_alliance_trd_attenuation ({1 - att:.2f}; prior failures "
        f"also load on the symptom slope, trd_slope_loading), so A_P's level effect differs by "
        f"-attenuation x beta_P (x the arm-averaged multiplier), plus a slope part growing with "
        f"t; "
    )
    trd_within = (
        "the within-person path beta_lag is the same in TRD and other patients (the VAR(1) is "
        "common), so the true interaction is 0; "
    )
    rupture = (
        "ruptures are alliance shocks: their effect on {what} runs through the alliance they "
        "lower ({path}), diluted by detection error (a k-SD drop of an error-laden score) and by "
        "the repair, which is the alliance's own return; no generating parameter is this "
        "coefficient (descriptive)"
    )
    missed = ("missed_beta_alliance / scale_total", p["missed_beta_alliance"] / c)
    adherence = ("adherence_beta_alliance / scale_total", p["adherence_beta_alliance"] / c)
    report = ("100 x phq_beta_alliance / (self-report max - min) / scale_total", per_pomp / c)
    rows = [
        _entry("symptoms_by_trd", "alliance_pat_prior:trd", -att * p["beta_P"] * m, False,
               "-beta_alliance_trd_attenuation x beta_P x mean beta_P_arm_multiplier",
               trd_level + "the prior patient part is an error-laden running mean of past "
               "ratings whose reliability grows with t, and mixes A_P with past within states: "
               "each group's slope is attenuated by its own reliability, so the difference is "
               "descriptive"),
        _entry("symptoms_by_trd", "alliance_within_prior:trd", 0.0, False, "none",
               trd_within + "the within part is not wA_{t-1} (item error, centring on an "
               "error-laden mean): descriptive moderation"),
        *_dropout_by_trd(p, c, scale),
        *_by_stage(p, c, scale),
        _entry("missed_sessions", "alliance", missed[1], False, missed[0],
               f"each scheduled slot after attended session t is missed with logit "
               f"missed_alpha + missed_beta_alliance x (latent A_t - mu) until the next "
               f"attended one, {scale}; " + naive),
        _entry("missed_sessions", "alliance_rc", missed[1], True, missed[0],
               f"regression calibration of the slot model: per point of the true score "
               f"({scale}); the generating logit has no patient or therapist effect and runs "
               f"are capped at missed_max_run = {p['missed_max_run']} (a forced return, rare)"),
        _entry("adherence_alliance", "alliance_lag1", adherence[1], False, adherence[0],
               f"doses taken ~ Binomial(prescribed, q), logit q = adherence_alpha + "
               f"adherence_beta_alliance x (latent A_(t-1) - mu) + a patient effect (SD "
               f"{p['adherence_patient_sd']}), the GLMM's subject-specific form, {scale}; "
               + naive_within),
        _entry("adherence_alliance", "alliance_lag1_rc", adherence[1], True, adherence[0],
               "regression calibration of the same GLMM in its own GLS metric: with a patient "
               "effect and many doses per interval the fit leans on within-patient "
               "differences, where one session's score is less reliable (within_patient), and "
               "lambda is that of the information used (alliance.models.calibration), per "
               f"point of the true score ({scale})"),
        _entry("reporting_alliance", "alliance_lag1", report[1], False, report[0],
               f"self-report = phq_b0 + phq_per_hamd x latent HAM-D + phq_beta_alliance x "
               f"(latent A_(t-1) - mu) + patient bias + noise, on {low}-{high}: "
               f"{per_pomp:.4f} POMP points per latent point at a given clinician rating "
               f"(held constant: the HAM-D is the rounded latent one), {scale}; " + naive_within),
        _entry("reporting_alliance", "alliance_lag1_rc", report[1], True, report[0],
               "regression calibration of the same LMM in its own GLS metric: the patient "
               "intercept makes the fit lean on within-patient differences, where one "
               "session's score is less reliable (alliance.observed_score_reliability."
               "within_patient), and lambda is that of the information used "
               f"(alliance.models.calibration), per point of the true score ({scale}); the "
               "self-report is rounded and clipped at its range (rarely reached)"),
    ]  # fmt: skip
    for model in ("symptoms_after_ruptures", "missed_after_ruptures", "dropout_after_ruptures"):
        what, path = {
            "symptoms_after_ruptures": ("symptoms", "beta_lag and the patient-level alliance"),
            "missed_after_ruptures": ("missed sessions", "missed_beta_alliance on A_t"),
            "dropout_after_ruptures": ("dropout", "dropout_beta_alliance on A_t"),
        }[model]
        for term in ("rupture_unrepaired_prior", "rupture_repaired_prior"):
            rows.append(_entry(model, term, None, False, "none",
                               rupture.format(what=what, path=path)))  # fmt: skip
    return rows


def _pooled_dropout_slope(truth: dict[str, Any]) -> tuple[float, str, str]:
    """dropout_hazard's target (latent scale), its formula and why: the model has no TRD term.

    The generating slope is dropout_beta_alliance, plus dropout_beta_alliance_trd among TRD
    patients. For rare events and a normal alliance of variance s^2 alike in both groups, the
    rows ending in an event have mean alliance b_g s^2 in group g, and a pooled logistic fit
    matches the events' mean alliance, b s^2 = sum_g share_g b_g s^2: the pooled slope is the
    mean of the group slopes weighted by this trial's shares of dropouts (without dropouts: the
    non-TRD slope). Approximate: 0.45 % (SE 0.10 %) flatter than the least-false pooled slope (the
    pooled logistic fit of the generating probabilities on the risk rows) in 15 simulated
    trials of 20,000 patients (the alliance's rupture tail is not normal)."""
    p = truth["params"]
    share = truth["treatment_resistance"]["realised"]["trd_share_of_dropouts"] or 0.0
    value = p["dropout_beta_alliance"] + share * p["dropout_beta_alliance_trd"]
    param = (
        "(dropout_beta_alliance + trd_share_of_dropouts x dropout_beta_alliance_trd) / scale_total"
    )
    why = (
        "the model pools TRD and non-TRD patients, whose generating slopes differ by "
        "dropout_beta_alliance_trd, so its target is the event-weighted mean slope (this trial's "
        f"TRD share of dropouts {share:.3f}; a rare-event approximation of the pooled "
        "model's least-false slope, about 0.5 % flatter)"
        if p["dropout_beta_alliance_trd"]
        else "one slope for every patient (dropout_beta_alliance_trd = 0)"
    )
    return value, param, why


def _dropout_by_trd(p: dict[str, Any], c: float, scale: str) -> list[dict[str, Any]]:
    """dropout_hazard_by_trd: the slope without TRD and the TRD difference, naive and corrected.

    The generating logit's alliance slope is dropout_beta_alliance, plus
    dropout_beta_alliance_trd among TRD patients (simulate.outcomes.attendance)."""
    base = ("dropout_beta_alliance / scale_total", p["dropout_beta_alliance"] / c)
    diff = ("dropout_beta_alliance_trd / scale_total", p["dropout_beta_alliance_trd"] / c)
    logit = (
        f"missing session t+1 is generated logit-linear in the latent alliance of session t "
        f"with slope dropout_beta_alliance, plus dropout_beta_alliance_trd among TRD patients "
        f"(>= 2 failed adequate trials, known before treatment), {scale}; "
    )
    naive = (
        "the observed score carries item error, so each group's naive slope is attenuated by "
        "the score's reliability among that group's rows at risk"
    )
    rc = (
        "regression calibration with each group's own reliability (lambda on that group's rows "
        "at risk): per point of the true score, the hazard's generating parameter on that scale"
    )
    return [
        _entry("dropout_hazard_by_trd", "alliance", base[1], False, base[0],
               logit + "this is the slope without TRD; " + naive + ": alliance_rc is the "
               "corrected one"),
        _entry("dropout_hazard_by_trd", "alliance:trd", diff[1], False, diff[0],
               logit + "this is the TRD minus non-TRD slope; " + naive + ", so the naive "
               "difference is shrunk by about the reliability and moves with any difference "
               "of the groups' reliabilities: alliance_rc:trd is the corrected one"),
        _entry("dropout_hazard_by_trd", "alliance_rc", base[1], True, base[0],
               rc + " (the slope without TRD)"),
        _entry("dropout_hazard_by_trd", "alliance_rc:trd", diff[1], True, diff[0],
               rc + " (the TRD slope minus the non-TRD one, each calibrated)"),
    ]  # fmt: skip


def _by_stage(p: dict[str, Any], c: float, scale: str) -> list[dict[str, Any]]:
    """dropout_hazard_by_stage and symptoms_by_stage: the Thase-Rush stage (centred at a fixed
    point) in place of the TRD flag. The generating effects depend on the flag, which is
    stage >= II here (the stage counts the first two failures one for one), not on the stage:
    with no TRD difference the slope is the same at every stage (identified, the interaction
    0); with one, a line in stage is a projection of a step (no generating value)."""
    step = p["dropout_beta_alliance_trd"]
    flag = (
        "the simulator's alliance effects depend on the TRD flag (>= 2 failed trials, i.e. "
        "Thase-Rush stage >= II here), not on the stage"
    )
    model = "dropout_hazard_by_stage"
    if step:
        why = (
            f"{flag}: the slope steps by dropout_beta_alliance_trd ({step:g}) at stage II, and a "
            "line in stage is a projection of that step that depends on the stages of the rows "
            "at risk, not a generating value"
        )
        terms = ("alliance", "alliance:stage", "alliance_rc", "alliance_rc:stage")
        hazard = [_entry(model, t, None, False, "none", why) for t in terms]
    else:
        param, value = "dropout_beta_alliance / scale_total", p["dropout_beta_alliance"] / c
        flat = (
            f"{flag}, and dropout_beta_alliance_trd = 0: the slope on the latent alliance of the "
            f"session just attended is dropout_beta_alliance at every stage, {scale}; so "
        )
        slope = flat + "the slope at the centre stage is dropout_beta_alliance on that scale"
        change = flat + "its change per stage is 0"
        naive = (
            "; the observed score carries item error, so this naive row is attenuated: the _rc "
            "row is the corrected one"
        )
        rc = (
            "; regression calibration with the stage as moderator (slope and interaction "
            "corrected together), per point of the true score"
        )
        hazard = [
            _entry(model, "alliance", value, False, param, slope + naive),
            _entry(model, "alliance:stage", 0.0, False, "none", change + naive),
            _entry(model, "alliance_rc", value, True, param, slope + rc),
            _entry(model, "alliance_rc:stage", 0.0, True, "none", change + rc),
        ]
    att = p["beta_alliance_trd_attenuation"]
    desc = (
        "; the prior-only parts are error-laden running means whose reliability grows with t, "
        "so the interactions with stage are descriptive (as symptoms_by_trd's)"
    )
    pat = (
        f"{flag}: beta_T, beta_P and beta_tP are scaled by 1 - beta_alliance_trd_attenuation "
        f"({1 - att:.2f}) from stage II on, and a line in stage is a projection of that step"
        if att
        else f"{flag}, and beta_alliance_trd_attenuation = 0: the patient-level effect is the "
        "same at every stage, the true interaction 0"
    )
    within = f"{flag}; the within-person path beta_lag is common to all patients: true 0"
    return [
        *hazard,
        _entry("symptoms_by_stage", "alliance_pat_prior:stage", None if att else 0.0, False,
               "none", pat + desc),
        _entry("symptoms_by_stage", "alliance_within_prior:stage", 0.0, False, "none",
               within + desc),
    ]  # fmt: skip


def _descriptive(truth: dict[str, Any]) -> list[dict[str, Any]]:
    med = truth["mediation"]
    rsa = (
        "symptoms depend on the patient-rated alliance only (the therapist rating is linked to "
        "it but has no effect of its own), so the response-surface coefficients are "
        "descriptive mixtures, not generating parameters"
    )
    out = [_entry("agreement_rsa", a, None, False, "none", rsa) for a in ("a1", "a2", "a3", "a4")]
    for trait, a in med["a_per_t_point"].items():
        out.append(
            _entry(
                "mediation_personality",
                f"indirect.{trait}",
                a * med["b_final_hamd_mean"],
                False,
                f"a_{trait} / trait_sd x mediation.b_final_hamd_mean",
                "a x b per T-score point with b the effect of A_P on the last-session HAM-D; "
                "early alliance is an error-laden proxy of A_P (it also carries A_T, the trend "
                "and within states), so a x b is attenuated and part moves to the direct path",
            )  # fmt: skip
        )
    w = EARLY_WINDOW_END
    out.append(
        _entry(
            "symptoms_observer_early",
            "alliance_o_early",
            truth["params"]["beta_tP"] * (truth["n_sessions"] - w) * _mean_multiplier(truth),
            False,
            "beta_tP x (n_sessions - w) x mean arm multiplier, w = 3 (score.early_window)",
            "the part of A_P's effect on HAM-D that accrues between session w and the last "
            "session, per point of A_P; the observer's early mean is a noisy proxy of A_P (it "
            "also carries A_T, the therapist's view, early within states, the coder's severity "
            "and the coders' own view, and rates 2 of the w sessions), so the slope is "
            "attenuated and mixes levels, and the landmark drops patients who left by w: "
            "descriptive",
        )
    )
    out.append(
        _entry(
            "pooled_sites",
            "pooled_r_REML",
            None,
            False,
            "none",
            "a correlation of mean alliance with symptom change depends on every variance "
            "component and on dropout, not on one generating parameter (realised."
            "r_mean_alliance_improvement is this trial's naive value)",
        )
    )
    return out


def _pooled_between(truth: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The parameters with beta_T, beta_P, beta_tP averaged over TRD and other patients.

    Models without a TRD term pool the groups: A_T and A_P are independent of TRD (drawn from
    other streams), so the least-false linear slope on them is the mean of the patients'
    effects, beta x (1 - beta_alliance_trd_attenuation x this trial's TRD share)."""
    p = truth["params"]
    att = p["beta_alliance_trd_attenuation"]
    if not att:
        return p, ""
    share = truth["treatment_resistance"]["realised"]["trd_share_of_randomised"]
    k = 1.0 - att * share
    note = (
        f"; pooled over TRD and other patients, whose effects are scaled by 1 - "
        f"beta_alliance_trd_attenuation: x (1 - attenuation x TRD share {share:.3f}) = {k:.4f}"
    )
    return {**p, **{b: p[b] * k for b in ("beta_T", "beta_P", "beta_tP")}}, note


def estimands(truth: dict[str, Any]) -> list[dict[str, Any]]:
    """The `estimands` list of truth.json (see the module docstring)."""
    p = truth["params"]
    m = _mean_multiplier(truth)
    growth = ("symptoms_growth", "symptoms_lagged", "symptoms_lagged_detrended")
    pooled, note = _pooled_between(truth)
    between = [*_prior_parts(pooled, m, growth), *_moderation(pooled, m)]
    for entry in between:
        if note and any(b in entry["parameter"] for b in ("beta_T", "beta_P", "beta_tP")):
            entry["parameter"] += " x (1 - beta_alliance_trd_attenuation x TRD share)"
            entry["reason"] += note
    return [
        *_riclpm(p, truth["alliance"]["observed_score_reliability"]["scale_within"]),
        *between,
        *_outcomes(truth),
        *_resistance(truth),
        *_descriptive(truth),
    ]
