"""Snakemake entry (prune_models, prune_studies): remove the outputs this config no longer
produces and write what it produces and what was removed."""

from pathlib import Path

from alliance import files
from alliance.models.preflight import remove_stale, stale_models, stale_studies
from alliance.runner import exit_job, script_logger


def main(smk) -> None:
    log = script_logger(smk, smk.rule)
    if smk.rule == "prune_models":
        results = Path(smk.output[0]).parents[1]  # <results>/models/fitted.json
        produced = {"models": list(smk.params.models)}
        stale = stale_models(results, produced["models"])
    else:
        results = Path(smk.output[0]).parent  # <results>/studies.json
        produced = {
            "bootstrap": list(smk.params.bootstrap),
            "bootstrap_shards": int(smk.params.bootstrap_shards),
            "sensitivity": list(smk.params.sensitivity),
            "sensitivity_shards": int(smk.params.sensitivity_shards),
        }
        stale = stale_studies(results, **produced)
    removed = [Path(p).relative_to(results).as_posix() for p in remove_stale(stale)]
    for path in removed:
        log.info("removed %s/%s: the current config does not produce it", results, path)
    files.write_json({**produced, "removed": removed}, smk.output[0])


main(snakemake)  # noqa: F821
exit_job()
