# Render stage: APA tables, publication figures and the report's overview page. They read the
# models folder, so they run after prune_models has removed the folders of models no longer fitted.


rule tables:
    input:
        stage_outputs(),
        flow=rules.clean.output.flow,
        models=rules.prune_models.output[0],
    output:
        report(
            directory(f"{RESULTS}/tables"),
            patterns=["{name}.html"],
            caption="../report/tables.rst",
            category="4 Render",
            subcategory="Tables",
        ),
    log:
        f"{LOGS}/tables.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=code("tables"),
        settings=SETTINGS.render().to_json(),
    script:
        "../scripts/tables.py"


rule figures:
    input:
        stage_outputs(),
        flow=rules.clean.output.flow,
        models=rules.prune_models.output[0],
    output:
        figures=report(
            directory(f"{RESULTS}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="4 Render",
            subcategory="Figures",
        ),
        status=f"{RESULTS}/report/figures.json",
    log:
        f"{LOGS}/figures.log",
    # the longest render job first: started after tables and figures_resistance, it ended ~2 s
    # after them, with one core idle, and the overview waits for it
    priority: 1
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code("figures"),
        settings=SETTINGS.render().to_json(),
        section="figures",
    script:
        "../scripts/figures.py"


# The treatment-resistance figures (issue #14): the same script, their own folder and report
# subcategory; a panel whose model is disabled or skipped shows why instead of its data.
rule figures_resistance:
    input:
        stage_outputs(),
        flow=rules.clean.output.flow,
        models=rules.prune_models.output[0],
    output:
        figures=report(
            directory(f"{RESULTS}/figures_resistance"),
            patterns=["{name}.png"],
            caption="../report/resistance.rst",
            category="4 Render",
            subcategory="Treatment resistance",
        ),
        status=f"{RESULTS}/report/figures_resistance.json",
    log:
        f"{LOGS}/figures_resistance.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code("figures"),
        settings=SETTINGS.render().to_json(),
        section="resistance",
    script:
        "../scripts/figures.py"


rule overview:
    input:
        stage_outputs(),
        flow=rules.clean.output.flow,
        models=rules.prune_models.output[0],
        figures=rules.figures.output.status,
        resistance=rules.figures_resistance.output.status,
    output:
        report(
            f"{RESULTS}/report/overview.html",
            caption="../report/overview.rst",
            category="0 Overview",
        ),
    log:
        f"{LOGS}/overview.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        code=code("overview"),
        settings=SETTINGS.render().to_json(),
    script:
        "../scripts/overview.py"
