"""Command-line interface: `alliance simulate | init | validate | output | power`."""

from __future__ import annotations

import argparse
import sys

from alliance.errors import ConfigError, InputError


def _validate(argv: list[str]) -> int:
    """Check a config before a run: the TODOs `alliance init` left (first), config errors, how
    the data read through it, and the clean stage's checks; print what to fix, in that order."""
    from alliance.onboard.preflight import preflight
    from alliance.onboard.yamltext import visible

    parser = argparse.ArgumentParser(prog="alliance validate", description=_validate.__doc__)
    parser.add_argument("--configfile", default="config/config.yaml")
    args = parser.parse_args(argv)
    report = preflight(args.configfile)
    report.config += _model_problems(args.configfile)
    if report.ok and report.clean is not None:
        result = report.clean
        summ = result.summary
        print(f"OK: {args.configfile}")
        print(f"  patients assessed      {summ['patients']}")
        print(f"  patients with sessions {summ['patients_with_sessions']}")
        print(f"  therapists             {summ['therapists']}")
        print(f"  session rows           {summ['session_rows']}")
        print(f"  arms                   {', '.join(map(str, summ['arms'])) or '-'}")
        print(f"  problems (non-fatal)   {summ['problems']}")
        for problem in result.validation.to_dict("records"):
            print(f"  - {_place(problem)} -> {problem['action']}")
        skipped = {
            k: v for k, v in result.availability.items() if isinstance(v, dict) and "available" in v
        }
        for name, state in sorted(skipped.items()):
            if not state["available"]:
                print(f"  analyses needing '{name}' will be skipped: {state['reason']}")
        return 0
    print(f"INVALID: {args.configfile}")
    if report.todos:
        print(f"TODO left by `alliance init` ({len(report.todos)}); answer these first:")
        for where, text in report.todos:
            print(f"  - {visible(where, 200)}: {visible(text, 200)}")
    for title, lines in (("config", report.config), ("data", report.data)):
        if lines:
            print(f"{title}:")
            print("\n".join(f"  - {line}" for line in lines))
    head = "clean checks"
    if report.set_aside and not report.not_run:
        head += f" (with the TODOs set aside: {visible('; '.join(report.set_aside), 600)})"
    if report.not_run:
        print(f"{head}: not run yet, {report.not_run}")
    elif report.problems:
        print(f"{head}: {len(report.problems)} problem(s) with policy 'error':")
        for problem in report.problems:
            print(f"  - {_place(problem)}")
    elif report.clean_error:
        print(f"{head}: {report.clean_error}")
    elif report.clean is not None:
        summ = report.clean.summary
        counts = (
            f"{summ['patients']} patients, {summ['therapists']} therapists, "
            f"{summ['session_rows']} session rows, {summ['problems']} non-fatal problem(s)"
        )
        print(f"{head}: passed ({counts})")
    if report.key:
        print(f"privacy: {report.key}")
        print("  (validate checked the data with a temporary key and wrote nothing)")
    return 1


def _model_problems(configfile: str) -> list[str]:
    """What the workflow also checks before any job runs: every model's outcome, terms, random
    parts, subset and column options against the columns the clean and score stages write for
    this config ("did you mean"), the bootstrap / sensitivity model ids
    (alliance.models.preflight), and instruments refused for an unconfirmed scoring key
    (alliance.instruments.status). None while the config itself does not load (reported above)."""
    from alliance.config import load_config
    from alliance.instruments.status import unverified_key_problems
    from alliance.models.preflight import model_problems
    from alliance.models.spec import load_specs
    from alliance.settings import Settings

    try:
        settings = Settings.from_config(load_config(configfile))
        keys = unverified_key_problems(settings.alliance, settings.symptoms)
        return keys + model_problems(settings, load_specs(settings.models))
    except (ConfigError, InputError):
        return []


def _output(argv: list[str]) -> int:
    """Print the results folder of a config (its `output`, resolved as the workflow does)."""
    from alliance.config import load_config

    parser = argparse.ArgumentParser(prog="alliance output", description=_output.__doc__)
    parser.add_argument("--configfile", default="config/config.yaml")
    args = parser.parse_args(argv)
    try:
        print(load_config(args.configfile)["output"])
    except ConfigError as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    return 0


def _power(argv: list[str]) -> int:
    """Power and sample size. `alliance power run`: the power study of a config (the `power`
    block, config/power.yaml) in this process, one shard per cell, into --out (what `make
    power` writes through Snakemake, sharded). `alliance power exact`: the closed-form power of
    a balanced two-level design with a cluster-level predictor (noncentral t, design effect)."""
    parser = argparse.ArgumentParser(prog="alliance power", description=_power.__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run", help="run the simulation study in this process")
    run.add_argument("--config", default="config/power.yaml")
    run.add_argument("--out", default="results/power")
    exact = sub.add_parser("exact", help="closed-form power of a balanced two-level design")
    exact.add_argument("--clusters", type=int, required=True)
    exact.add_argument("--size", type=int, required=True, help="members per cluster")
    exact.add_argument("--icc", type=float, required=True)
    exact.add_argument("--effect", type=float, required=True, help="in outcome SD units")
    exact.add_argument("--predictor", choices=("binary", "continuous"), default="binary")
    exact.add_argument("--alpha", type=float, default=0.05)
    exact.add_argument("--sides", type=int, choices=(1, 2), default=2)
    args = parser.parse_args(argv)
    if args.mode == "exact":
        from alliance.studies.power.closed_form import exact_power

        value = exact_power(args.clusters, args.size, args.icc, args.effect, args.alpha,
                            args.sides, args.predictor)  # fmt: skip
        print(f"{value:.4f}")
        return 0
    return _power_run(args.config, args.out)


def _power_run(config: str, out: str) -> int:
    from pathlib import Path

    from alliance.render.figures.power import draw_power
    from alliance.studies.power import calibrate, results, study, trials

    try:
        spec = study.load_power(config)
        cal = calibrate.calibrate(spec["calibrate_from"]) if spec["calibrate_from"] else None
        params = trials.cell_parameters(spec, cal)
        pipe = trials.power_pipeline(spec)
        parts = [trials.run_shard(spec, c, params[c["cell"]], 0, 1, pipe) for c in
                 study.cells(spec)]  # fmt: skip
    except (ConfigError, InputError) as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    rows = results.gather(parts, spec)
    table, _ = results.write_results(rows, spec, params, cal[1] if cal else None, out)
    draw_power(table, spec["target_power"], Path(out) / "figures")
    print(f"wrote {out}/power.csv, power.md, smallest.csv, parameters.json, figures/")
    return 0


def _place(problem: dict) -> str:
    return str(
        InputError(
            problem["message"], file=problem["file"], row=problem["row"],
            column=problem["column"], value=problem["value"], check=problem["check"],
        )
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `alliance` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "simulate": "simulate a trial with known truth",
        "init": "write a starter config for a foreign export",
        "validate": "read, map and validate a dataset only",
        "output": "print a config's results folder",
        "power": "power and sample size (run the study, or exact two-level power)",
    }
    if not argv or argv[0] not in commands:
        lines = "\n".join(f"  {k:<9} {v}" for k, v in commands.items())
        print(f"usage: alliance COMMAND [options]\n\ncommands:\n{lines}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command == "simulate":
        from alliance.simulate.cli import main as simulate_main

        return simulate_main(rest)
    if command == "init":
        from alliance.onboard.cli import main as init_main

        return init_main(rest)
    if command == "output":
        return _output(rest)
    if command == "power":
        return _power(rest)
    return _validate(rest)
