"""Command-line interface: `alliance simulate | init | validate`."""

from __future__ import annotations

import argparse
import sys

from alliance.errors import ConfigError, InputError


def _validate(argv: list[str]) -> int:
    """Read, map and validate only; print a summary and every problem found."""
    from alliance.clean.problems import ValidationFailed
    from alliance.clean.stage import clean_trial
    from alliance.config import load_config
    from alliance.settings import Settings

    parser = argparse.ArgumentParser(prog="alliance validate", description=_validate.__doc__)
    parser.add_argument("--configfile", default="config/config.yaml")
    args = parser.parse_args(argv)
    try:
        result = clean_trial(Settings.from_config(load_config(args.configfile)).clean())
    except ValidationFailed as exc:
        print(f"INVALID: {len(exc.problems)} problem(s) with policy 'error':")
        for problem in exc.problems:
            print(f"  - {_place(problem)}")
        return 1
    except (InputError, ConfigError) as exc:
        print(f"INVALID: {exc}")
        return 1
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
    return _validate(rest)
