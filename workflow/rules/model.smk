# Model stage: one job per model spec (config `models`), then a summary (results/models/).


rule model:
    input:
        sessions=rules.score.output.analysis,
        patients=rules.score.output.patient_analysis,
        availability=rules.clean.output.availability,
    output:
        coefficients=f"{RESULTS}/models/{{model}}/coefficients.csv",
        fit=f"{RESULTS}/models/{{model}}/fit.json",
        frame=f"{RESULTS}/models/{{model}}/frame.parquet",
        timing=f"{RESULTS}/models/{{model}}/timing.json",
    log:
        f"{LOGS}/model_{{model}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code("model"),
        model="{model}",
        settings=model_settings,
    script:
        "../scripts/model.py"


rule model_summary:
    input:
        fits=expand(f"{RESULTS}/models/{{model}}/fit.json", model=MODEL_IDS),
        coefficients=expand(
            f"{RESULTS}/models/{{model}}/coefficients.csv", model=MODEL_IDS
        ),
    output:
        summary=report(
            f"{RESULTS}/models/summary.csv",
            caption="../report/models.rst",
            category="3 Model",
        ),
    log:
        f"{LOGS}/model_summary.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=code("model_summary"),
        settings=SETTINGS.model_summary().to_json(),
    script:
        "../scripts/model_summary.py"
