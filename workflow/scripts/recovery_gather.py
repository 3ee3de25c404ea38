"""Snakemake entry: gather the recovery shards; write replicates, summary, verdicts and table."""

from alliance import files
from alliance.runner import exit_job, script_logger
from alliance.studies.recovery_results import (
    gather,
    read_shards,
    summarise,
    to_markdown,
    verdict_table,
)
from alliance.studies.recovery_study import load_study


def main(smk) -> None:
    log = script_logger(smk, "recovery_gather")
    study = load_study(smk.input.study)
    replicates = gather(read_shards(smk.input.shards), study["replicates"])
    summary = summarise(replicates)
    files.write_csv(replicates, smk.output.replicates)
    files.write_csv(summary, smk.output.recovery)
    files.write_csv(verdict_table(summary), smk.output.verdicts)
    with files.atomic_path(smk.output.markdown) as tmp:
        tmp.write_text(to_markdown(summary, study), encoding="utf-8")
    for r in summary.itertuples():
        log.info(
            "%s: truth %.4f, bias %+.4f (MC SE %.4f), coverage %.3f, failed %d of %d: %s %s",
            r.check, r.truth, r.bias, r.mc_se, r.coverage_truth, r.failed, r.replicates,
            r.verdict, r.verdict_note,
        )  # fmt: skip


main(snakemake)  # noqa: F821
exit_job()
