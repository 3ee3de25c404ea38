# Provenance: versions, resolved config, input hashes, seeds, git commit, stage timings.


rule provenance:
    input:
        unpack(data_inputs),
        outputs=stage_outputs(),
        render=[
            *rules.tables.output,
            *rules.figures.output,
            *rules.figures_resistance.output,
            *rules.overview.output,
        ],
        instruments=instrument_files,
    output:
        f"{RESULTS}/provenance.json",
        # per-model and per-job seconds of this run: the report's overview category, a page of
        # its own so that overview.html stays byte-identical between runs
        timings=report(
            f"{RESULTS}/report/timings.html",
            caption="../report/timings.rst",
            category="0 Overview",
        ),
    log:
        f"{LOGS}/provenance.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        code=code("provenance"),
        settings=SETTINGS.to_json(),
    script:
        "../scripts/provenance.py"
