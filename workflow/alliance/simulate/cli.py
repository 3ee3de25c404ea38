"""`alliance simulate` / `python -m alliance.simulate`: simulate a trial and write its files."""

from __future__ import annotations

import argparse
from pathlib import Path

from alliance.simulate.export import write_trial
from alliance.simulate.trial import simulate_trial


def build_parser() -> argparse.ArgumentParser:
    """Argument parser for `alliance simulate` / `python -m alliance.simulate`."""
    ap = argparse.ArgumentParser(
        prog="alliance simulate",
        description="Simulate a depression-treatment trial with a known alliance-outcome truth.",
    )
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--patients", type=int, default=480, help="randomised patients")
    ap.add_argument("--therapists", type=int, default=40)
    ap.add_argument("--sessions", type=int, default=16)
    ap.add_argument(
        "--format", default="csv", choices=["csv", "tsv", "parquet", "xlsx", "sav", "dta"]
    )
    ap.add_argument("--layout", default="long", choices=["long", "wide"])
    ap.add_argument(
        "--missing-code",
        type=int,
        default=None,
        help="write missing numeric cells as this code (csv/tsv/xlsx; the sav user-missing code)",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    """Simulate and write a trial; prints the written paths."""
    args = build_parser().parse_args(argv)
    trial = simulate_trial(
        n_patients=args.patients,
        n_therapists=args.therapists,
        n_sessions=args.sessions,
        seed=args.seed,
    )
    paths = write_trial(
        trial, args.out, fmt=args.format, layout=args.layout, missing_code=args.missing_code
    )
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
