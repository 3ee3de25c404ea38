"""Snakemake entry: gather the power shards; write power.csv, the curves, power.md, parameters."""

from pathlib import Path

import pandas as pd

from alliance.render.figures.power import draw_power
from alliance.runner import exit_job, script_logger
from alliance.studies.power.calibrate import calibrate
from alliance.studies.power.results import gather, write_results
from alliance.studies.power.study import load_power
from alliance.studies.power.trials import cell_parameters


def main(smk) -> None:
    log = script_logger(smk, "power_gather")
    study = load_power(smk.input.study)
    calibration = calibrate(smk.params.calibrate_from) if smk.params.calibrate_from else None
    params = cell_parameters(study, calibration)
    rows = gather([pd.read_parquet(p) for p in smk.input.shards], study)
    folder = Path(smk.output.power).parent
    table, _ = write_results(rows, study, params, calibration[1] if calibration else None, folder)
    draw_power(table, study["target_power"], Path(smk.output.figures))
    for r in table.itertuples():
        log.info(
            "%s %s:%s power %.3f [%.3f, %.3f], coverage %.3f, failed %d of %d",
            r.cell, r.model, r.term, r.power, r.power_ci_low, r.power_ci_high, r.coverage,
            r.failed, r.replicates,
        )  # fmt: skip


main(snakemake)  # noqa: F821
exit_job()
