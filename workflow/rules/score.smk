# Score stage: alliance scores, reliability, agreement, levels, ruptures (results/scores/).

SCORE_FILES = {
    "alliance": "alliance.parquet",
    "patient_alliance": "patient_alliance.parquet",
    "prorating": "prorating.csv",
    "reliability": "reliability.csv",
    "agreement": "agreement.csv",
    "agreement_patients": "agreement_patients.parquet",
    "analysis": "analysis.parquet",
    "patient_analysis": "patient_analysis.parquet",
    "ruptures": "ruptures.csv",
    "rupture_patients": "rupture_patients.csv",
    "notes": "score_notes.json",
}
# Aggregate tables only in report.html: the rest hold one row per patient or session
# (pseudonyms included) and stay under results/ (tests/test_privacy_policy.py checks).
REPORTED_SCORES = ("reliability", "agreement")


rule score:
    input:
        sessions=rules.clean.output.sessions,
        patients=rules.clean.output.patients,
        instruments=instrument_files,
    output:
        **{
            key: (
                report(
                    f"{RESULTS}/scores/{name}",
                    caption="../report/scores.rst",
                    category="2 Score",
                )
                if key in REPORTED_SCORES
                else f"{RESULTS}/scores/{name}"
            )
            for key, name in SCORE_FILES.items()
        },
    log:
        f"{LOGS}/score.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        code=code("score"),
        settings=SETTINGS.score_stage().to_json(),
    script:
        "../scripts/score.py"


rule alliance_icc:
    input:
        analysis=rules.score.output.analysis,
    output:
        icc=report(
            f"{RESULTS}/scores/alliance_icc.csv",
            caption="../report/scores.rst",
            category="2 Score",
        ),
    log:
        f"{LOGS}/alliance_icc.log",
    # before the model jobs, on one core: the greedy scheduler prefers jobs with larger inputs,
    # so it ran after every model (at 600k rows 7 s alone at the end), and render waits for it
    priority: 1
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code("alliance_icc"),
    script:
        "../scripts/alliance_icc.py"
