"""Snakemake entry: gather the recovery shards; write replicates, targets, summary and table."""

from alliance import files
from alliance.runner import script_logger
from alliance.studies.recovery_results import (
    gather,
    read_shards,
    summarise,
    target_table,
    to_markdown,
)
from alliance.studies.recovery_study import load_study


def main(smk) -> None:
    log = script_logger(smk, "recovery_gather")
    study = load_study(smk.input.study)
    replicates, target_rows = gather(
        read_shards(smk.input.shards), study["replicates"], study["target"]["trials"]
    )
    target = target_table(target_rows, study)
    summary = summarise(replicates, target)
    files.write_csv(replicates, smk.output.replicates)
    files.write_csv(target, smk.output.target)
    files.write_csv(summary, smk.output.recovery)
    with files.atomic_path(smk.output.markdown) as tmp:
        tmp.write_text(to_markdown(summary, study), encoding="utf-8")
    for r in summary.itertuples():
        log.info(
            "%s: true %.4f, bias %+.4f, RMSE %.4f, coverage %.3f, failed %d",
            r.check, r.true_value, r.bias, r.rmse, r.coverage, r.n_failed,
        )  # fmt: skip


main(snakemake)  # noqa: F821
