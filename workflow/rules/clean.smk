# Clean stage: read -> map -> validate -> derive -> pseudonymise (results/clean/).


rule clean:
    input:
        unpack(data_inputs),
        instruments=instrument_files,
    output:
        sessions=f"{RESULTS}/clean/sessions.parquet",
        patients=f"{RESULTS}/clean/patients.parquet",
        flow=f"{RESULTS}/clean/flow.csv",
        validation=f"{RESULTS}/clean/validation.csv",
        availability=f"{RESULTS}/clean/availability.json",
    log:
        f"{LOGS}/clean.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/clean.py"
