"""`alliance validate`: everything a config still needs, in the order a person fixes it.

1. the TODOs `alliance init` left (`todos.todo_entries`: exactly the ones it wrote);
2. config errors that are not TODOs, checked with the TODOs set aside (`todos.stand_in`);
3. the data as the config reads it, in plain words: an item regex that matches no column, or only
   patient-level columns of a wide table, with the columns that look like alliance items; a
   session token that leaves session-numbered columns behind; a role column that is not there;
4. the clean stage's own checks, run on the data with the TODOs set aside.

A missing or refused pseudonym key is reported, and the clean checks then run with a temporary
key: `validate` writes nothing, so no pseudonym it makes leaves the terminal.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alliance.clean import readers
from alliance.clean.pseudonym import resolve_key
from alliance.clean.stage import CleanResult, clean_trial
from alliance.config import ROLE_KEYS_SESSION, load_yaml_mapping, resolve_paths, validate_config
from alliance.errors import ConfigError, InputError
from alliance.onboard.inspection import inspect_export
from alliance.onboard.numbering import fit_token, number_families, session_tokens
from alliance.onboard.todos import is_todo, stand_in, todo_entries
from alliance.onboard.yamltext import visible
from alliance.settings import CleanSettings, Settings

SHOWN_COLUMNS = 3  # example columns quoted per finding


@dataclass
class Preflight:
    """What `alliance validate` found, section by section."""

    path: str
    todos: list[tuple[str, str]] = field(default_factory=list)
    config: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)
    not_run: str = ""  # why the clean checks did not run
    clean: CleanResult | None = None
    problems: list[dict] = field(default_factory=list)  # clean problems with policy `error`
    clean_error: str = ""  # a structural error that stopped the clean stage
    key: str = ""  # why the configured pseudonym key would be refused

    @property
    def ok(self) -> bool:
        """Nothing left to fix: the pipeline can run this config."""
        return not (self.todos or self.config or self.data or self.not_run or self.problems
                    or self.clean_error or self.key) and self.clean is not None  # fmt: skip


def _examples(cols: list[str]) -> str:
    """The first few column names, and how many there are when there are more."""
    shown = ", ".join(visible(c) for c in cols[:SHOWN_COLUMNS])
    return shown + (f", … ({len(cols)} columns)" if len(cols) > SHOWN_COLUMNS else "")


@dataclass
class _Header:
    """Column names as the config reads them: session-level (long names) and patient-level."""

    session: dict[str, str]  # long name -> first source column
    patient: list[str]
    wide: bool
    token: str
    all_columns: list[str]


def _header(cfg: dict[str, Any]) -> _Header:
    """The data's column names split as the clean stage will split them (header only)."""
    data, cols = cfg["data"], cfg["columns"]
    opts = {"sheet": data["sheet"], "encoding": data["encoding"], "delimiter": data["delimiter"]}
    names = [str(c) for c in readers.read_columns(data["sessions"], **opts)]
    patient_file = (
        [str(c) for c in readers.read_columns(data["patients"], **opts)] if data["patients"] else []
    )
    token = data["session_token"]
    try:
        rx = re.compile(token)
    except re.error as exc:
        msg = f"data.session_token {token!r} is not a valid regular expression: {exc}"
        raise InputError(msg) from None
    wide = data["layout"] == "wide" or (
        data["layout"] == "auto"
        and cols["session"] not in names
        and any(rx.search(c) for c in names if c != cols["patient"])
    )
    if not wide:
        return _Header({c: c for c in names}, patient_file, False, token, names)
    session: dict[str, str] = {}
    patient = list(patient_file)
    for c in names:
        m = rx.search(c) if c != cols["patient"] else None
        if m:
            session.setdefault(c[: m.start()] + c[m.end() :], c)
        else:
            patient.append(c)
    return _Header(session, patient, True, token, names)


def _token_findings(h: _Header, id_col: str) -> list[str]:
    """Session-numbered columns the configured token leaves as patient-level columns."""
    if not h.wide:
        return []
    names = [c for c in h.all_columns if c != id_col]
    fits = session_tokens(names)
    mine = fit_token(h.token, names)
    if not fits:
        return []
    best = fits[0]
    stems: dict[str, int] = {}
    for stem, _ in best.split.values():
        stems[stem] = stems.get(stem, 0) + 1
    matched = set(mine.split) if mine else set()
    missed = [c for c, (stem, _) in best.split.items() if stems[stem] > 1 and c not in matched]
    if not missed:
        return []
    return [
        f"data.session_token {visible(h.token)} does not match {len(missed)} column(s) that "
        f"carry a session number ({_examples(missed)}): they are read as patient-level columns, "
        f"not sessions; a token that matches them: {visible(best.token)}"
    ]


def _alliance_like(cfg: dict[str, Any]) -> str:
    """The columns `alliance init` would read as alliance items, in the file's own names."""
    data = cfg["data"]
    try:
        ins = inspect_export(data["sessions"], data["patients"])
    except (InputError, ConfigError, OSError):
        return ""
    groups = [g for g in ins.item_groups if g.use not in (None, "symptoms")]
    if not groups:
        return ""
    longs = {c for g in groups for c in g.columns.values()}
    if ins.layout == "wide" and ins.session_token:
        header = readers.read_columns(data["sessions"], sheet=data["sheet"])
        fit = fit_token(ins.session_token, [str(c) for c in header])
        cols = [c for c, (stem, _) in (fit.split.items() if fit else []) if stem in longs]
        how = f"with data.session_token {visible(ins.session_token)} their item regexes are "
    else:
        cols = sorted(longs)
        how = "item regexes that match them: "
    return (
        f"; columns that look like alliance items: {_examples(cols)}; "
        + how
        + " and ".join(visible(g.pattern) for g in groups)
    )


def _regex_findings(key: str, pattern: Any, h: _Header, hint: Callable[[], str]) -> list[str]:
    """An item regex that is invalid, captures no number, or matches no session column (then
    what it does match, and `hint()`: the columns that look like items)."""
    if not isinstance(pattern, str) or is_todo(pattern):
        return []
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        return [f"regex for {key} {visible(pattern)} is not a valid regular expression: {exc}"]
    if rx.groups < 1:
        return [f"regex for {key} {visible(pattern)} needs a group capturing the item number"]
    found = {c: m for c in h.session if (m := rx.search(c))}
    if found:
        bad = [c for c, m in found.items() if not (m.group(1) or "").isdigit()]
        if bad:
            return [f"regex for {key} captures a non-number as item number in {_examples(bad)}"]
        return [
            f"regex for {key} matches {len(hit)} of the {len(fam.columns)} columns "
            f"{visible(min(fam.columns.values()))}..{visible(max(fam.columns.values()))}; "
            f"it leaves out {_examples(sorted(set(fam.columns.values()) - hit))}"
            for fam in number_families(list(h.session))
            if (hit := set(fam.columns.values()) & set(found)) and len(hit) < len(fam.columns)
        ]
    text = f"regex for {key} matches 0 columns" + (" of the session table" if h.wide else "")
    flat = [c for c in h.patient if rx.search(c)]
    if flat:
        text += (
            f"; it matches {len(flat)} patient-level column(s) ({_examples(flat)}): a wide "
            f"table's item columns must carry data.session_token {visible(h.token)}"
        )
    return [text + hint()]


def _role_findings(cfg: dict[str, Any], h: _Header) -> list[str]:
    """Session-level role columns the session table does not have (the clean stage would
    ignore them) and symptom columns that are not there."""
    out = []
    wanted = [(f"columns.{r}", cfg["columns"][r]) for r in ROLE_KEYS_SESSION if r != "session"]
    wanted.append(("symptoms.column", cfg["symptoms"]["column"]))
    for key, col in wanted:
        if not isinstance(col, str) or not col or col in h.session:
            continue
        if h.wide and col in h.all_columns and col not in h.patient:
            out.append(f"{key} {visible(col)} names a wide column: with data.session_token "
                       f"{visible(h.token)} the session table calls it "
                       f"{visible(_long(col, h))}")  # fmt: skip
            continue
        where = "a patient-level column" if col in h.patient else "not a column of the data"
        close = difflib.get_close_matches(col, list(h.session), n=3)
        out.append(
            f"{key} {visible(col)} is {where}, so it is not read as a session value"
            + (f" (session columns with similar names: {_examples(close)})" if close else "")
        )
    return out


def _long(col: str, h: _Header) -> str:
    """A wide column's long name (the column without its session token)."""
    m = re.search(h.token, col)
    return col[: m.start()] + col[m.end() :] if m else col


def data_findings(cfg: dict[str, Any], raters: dict[str, Any]) -> list[str]:
    """Plain-words problems with how the config reads the data (see the module docstring);
    `raters` as written in the config (a TODO rater's regex is checked too). Raises
    InputError when the data cannot be read."""
    h = _header(cfg)
    out: list[str] = []
    id_col = cfg["columns"]["patient"]
    if id_col and id_col not in h.all_columns:
        close = difflib.get_close_matches(id_col, h.all_columns, n=3)
        out.append(f"columns.patient {visible(id_col)} is not a column of data.sessions"
                   + (f" (similar: {_examples(close)})" if close else ""))  # fmt: skip
    out += _token_findings(h, id_col)
    hint: list[str] = []

    def alliance_hint() -> str:  # inspected once, only when a regex misses
        if not hint:
            hint.append(_alliance_like(cfg))
        return hint[0]

    for name, spec in raters.items():
        if isinstance(spec, dict):
            out += _regex_findings(f"alliance.raters.{name}.items", spec.get("items"), h,
                                   alliance_hint)  # fmt: skip
    if cfg["symptoms"]["items"]:
        out += _regex_findings("symptoms.items", cfg["symptoms"]["items"], h, lambda: "")
    return out + _role_findings(cfg, h)


def _with_temporary_key(settings: CleanSettings) -> CleanSettings:
    """`settings` with a random key from an environment variable nobody set."""
    unset = "ALLIANCE_VALIDATE_UNSET_" + secrets.token_hex(6).upper()
    while unset in os.environ:  # pragma: no cover - 48 random bits
        unset += "X"
    privacy = dataclasses.replace(settings.privacy, key_env=unset, key=secrets.token_hex(32))
    return dataclasses.replace(settings, privacy=privacy)


def _run_clean(report: Preflight, cfg: dict[str, Any]) -> None:
    """The clean stage on `cfg`; a refused key is reported and replaced by a temporary one."""
    from alliance.clean.problems import ValidationFailed

    settings = Settings.from_config(cfg).clean()
    try:
        resolve_key(settings.privacy, settings.data)
    except ConfigError as exc:
        report.key = str(exc)
        settings = _with_temporary_key(settings)
    try:
        report.clean = clean_trial(settings)
    except ValidationFailed as exc:
        report.problems = list(exc.problems)
    except (InputError, ConfigError) as exc:
        report.clean_error = str(exc)


def preflight(path: str) -> Preflight:
    """Check the config at `path`: TODOs, config errors, data findings, clean checks."""
    report = Preflight(path)
    try:
        raw = load_yaml_mapping(path)
    except ConfigError as exc:
        report.config = [str(exc)]
        report.not_run = "the config cannot be read"
        return report
    report.todos = todo_entries(raw)
    stood = stand_in(raw)
    report.set_aside = stood.set_aside
    try:
        # paths written in the file are relative to its folder, as in the workflow
        cfg = resolve_paths(validate_config(stood.config), raw, Path(path).parent)
    except ConfigError as exc:
        lines = str(exc).split("\n  - ")[1:] or [str(exc)]
        # errors that only say a TODO is unanswered (symptoms.column TODO: "set symptoms.column
        # or symptoms.items") are the TODO list's already
        keys = {k for p in stood.blocking for k in (p, p.split(".")[0])}
        report.config = [ln for ln in lines if not any(f"key {k}:" in ln for k in keys)]
        report.not_run = (
            "the config errors above come first"
            if report.config
            else f"they need {', '.join(stood.blocking)} (TODO above)"
        )
        return report
    raters = (raw.get("alliance") or {}).get("raters") or {}
    try:
        report.data = data_findings(cfg, raters if isinstance(raters, dict) else {})
    except InputError as exc:
        report.data = [f"cannot read the data as configured: {visible(exc, 300)}"]
        report.not_run = "the data cannot be read as configured"
        return report
    if stood.blocking:
        report.not_run = f"they need {', '.join(stood.blocking)} (TODO above)"
        return report
    _run_clean(report, cfg)
    return report
