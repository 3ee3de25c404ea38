# Clean stage: read -> map -> validate -> derive -> pseudonymise (results/clean/).
# The settings param carries only a fingerprint of the pseudonym key (report.html shows rule
# params); the script takes the key itself from the config or the environment.


rule clean:
    input:
        unpack(data_inputs),
        instruments=instrument_files,
    output:
        sessions=f"{RESULTS}/clean/sessions.parquet",
        patients=f"{RESULTS}/clean/patients.parquet",
        flow=report(
            f"{RESULTS}/clean/flow.csv",
            caption="../report/flow.rst",
            category="1 Clean",
        ),
        # one row per problem, quoting pseudonyms and values: not in report.html (the overview
        # page counts the problems)
        validation=f"{RESULTS}/clean/validation.csv",
        availability=f"{RESULTS}/clean/availability.json",
        # one row per scheduled session (attended and missed; empty without an attendance role)
        schedule=f"{RESULTS}/clean/schedule.parquet",
    log:
        f"{LOGS}/clean.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code("clean"),
        settings=SETTINGS.clean().to_json(),
    script:
        "../scripts/clean.py"
