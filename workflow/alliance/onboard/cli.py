"""`alliance init`: the command, and the readable summary it prints."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from alliance import files
from alliance.config import safe_yaml
from alliance.errors import InputError
from alliance.onboard.inspection import Inspection, inspect_export
from alliance.onboard.profile import fmt
from alliance.onboard.starter import starter_config
from alliance.onboard.todos import todo_entries
from alliance.onboard.yamltext import visible

DEFAULT_OUT = "alliance.yaml"


def summary(ins: Inspection) -> str:
    """Readable report of what was found and guessed; data shows its hidden characters (line
    breaks, tabs, terminal escapes) as escapes, so each line stays one line."""
    out = [f"export: {ins.data_file}" + (f" + {ins.patients_file}" if ins.patients_file else "")]
    out.append(f"layout: {ins.layout} ({ins.layout_reason})")
    rows = f"{ins.n_rows} session rows, {ins.n_patients} patients"
    if ins.n_patient_rows is not None:
        rows += f"; patients file: {ins.n_patient_rows} rows"
    out.append(rows)
    out.append("roles:")
    for role, guesses in ins.candidates.items():
        g = ins.chosen.get(role)
        text = f"{g.column:<18} {g.reason}" if g else "-"
        out.append(f"  {role:<17} {text}")
        others = [x.column for x in guesses if g is None or x.column != g.column]
        if others:
            out.append(f"  {'':<17} other candidates: {', '.join(others)}")
    if ins.date_format:
        out.append(f"  {'date_format':<17} {ins.date_format} ({ins.date_format_why})")
    for trait, g in ins.personality.items():
        out.append(f"  {'personality.' + trait:<17} {g.column:<18} {g.reason}")
    if ins.covariates:
        out.append(f"  {'covariates':<17} {', '.join(g.column for g in ins.covariates)}")
    if ins.item_groups:
        out.append("item groups:")
    for g in ins.item_groups:
        sus = f", suspicious {', '.join(map(fmt, g.suspicious))}" if g.suspicious else ""
        use = {None: "not used", "rater?": "alliance, rater unclear (TODO)"}.get(g.use, g.use)
        out.append(f"  {g.label} ({len(g.columns)} items, {fmt(g.low)}–{fmt(g.high)}{sus}) "
                   f"-> {use}{' / ' + g.instrument if g.instrument else ''}")  # fmt: skip
    grouped = {c for g in ins.item_groups for c in g.columns.values()}
    categorical = {k: v for k, v in ins.categorical.items() if k not in grouped}
    if categorical:
        out.append("categorical columns:")
        out += [f"  {k}: {', '.join(v)}" for k, v in categorical.items()]
    if ins.numeric_ranges:
        ranges = [f"{k} {fmt(lo)}–{fmt(hi)}" for k, (lo, hi) in ins.numeric_ranges.items()
                  if k not in grouped]  # fmt: skip
        out.append("numeric ranges: " + "; ".join(ranges))
    by_code: dict[str, list[str]] = {}
    for col, codes in ins.user_missing.items():
        by_code.setdefault(", ".join(map(str, codes)), []).append(col)
    for codes, cols in by_code.items():
        shown = ", ".join(cols[:3]) + (f" and {len(cols) - 3} more" if len(cols) > 3 else "")
        out.append(f"user-missing {codes} declared in the file for {shown} (honoured as missing)")
    if ins.value_labels:
        more = len(ins.value_labels) - 8
        out.append("value labels (applied to arm, status, modality, site, therapist and covariates "
                   "only): " + ", ".join(ins.value_labels[:8])
                   + (f" and {more} more" if more > 0 else ""))  # fmt: skip
    for where, codes in ins.suspicious.items():
        out.append(f"suspicious codes in {where}: {', '.join(map(fmt, codes))}")
    if ins.suspicious:
        ok = ", ".join(map(fmt, ins.suggested_missing_codes)) or "none"
        out.append(f"suggested data.missing_codes: {ok}")
        for code, cols in ins.missing_code_clashes.items():
            out.append(f"  {fmt(code)} is also a real value of {', '.join(cols[:6])}: not added")
    used = {g.column for g in ins.chosen.values()} | {g.column for g in ins.covariates}
    used |= {g.column for g in ins.personality.values()}
    used |= {c for g in ins.item_groups if g.use for c in g.columns.values()}
    if ins.layout == "wide":
        used.add("session")  # made by the reshape from the column names
    unmapped = sorted({p.name for p in ins.profiles.values()} - used)
    if unmapped:
        out.append("not mapped (dropped unless added to data.keep_columns): " + ", ".join(unmapped))
    out += [f"note: {n}" for n in ins.notes]
    return "\n".join(visible(line, sys.maxsize) for line in out)


def relative_to_config(path: str, config: Path) -> str:
    """`path` (as given, from the current folder) as seen from the folder of `config`."""
    return os.path.relpath(Path(path).resolve(), config.resolve().parent)


def main(argv: list[str] | None = None) -> int:
    """`alliance init DATA_FILE [--patients FILE] [--out PATH] [--force]`."""
    parser = argparse.ArgumentParser(
        prog="alliance init", description="Inspect a trial export and write a starter config."
    )
    parser.add_argument("data_file", help="session-level (long) or wide table")
    parser.add_argument("--patients", help="optional patient-level table")
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"config to write (default {DEFAULT_OUT})"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"alliance init: {visible(out, sys.maxsize)} exists; use --force to overwrite it",
              file=sys.stderr)  # fmt: skip
        return 1
    try:
        ins = inspect_export(args.data_file, args.patients)
        # the pipeline reads a config's relative paths from the config file's folder
        ins = dataclasses.replace(
            ins,
            data_file=relative_to_config(ins.data_file, out),
            patients_file=relative_to_config(ins.patients_file, out) if ins.patients_file else None,
        )
        text = starter_config(ins)
    except InputError as exc:
        print(f"alliance init: {visible(exc, sys.maxsize)}", file=sys.stderr)
        return 1
    print(summary(ins))
    with files.atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    n_todo = len(todo_entries(safe_yaml(text, str(out))))
    print(f"\nwrote {out}: review every `guessed` line", end="")
    print(f" and answer {n_todo} TODO(s)" if n_todo else "", end="")
    print(f"; then run: alliance validate --configfile {out}")
    return 0
