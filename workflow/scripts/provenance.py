"""Snakemake entry: write results/provenance.json."""

from pathlib import Path

from alliance import files
from alliance.provenance import provenance
from alliance.runner import TIMING_DIR, script_logger
from alliance.settings import Settings


def main(smk) -> None:
    log = script_logger(smk, "provenance")
    inputs = [smk.input.sessions, *([smk.input.patients] if hasattr(smk.input, "patients") else [])]
    inputs += list(smk.input.instruments)
    code_root = Path(smk.scriptdir).parents[1]
    record = provenance(Settings.from_json(smk.params.settings), inputs, code_root, TIMING_DIR)
    files.write_json(record, smk.output[0])
    log.info("pipeline commit %s", record["pipeline"].get("commit"))


main(snakemake)  # noqa: F821
