"""The starter config: YAML text written from an `Inspection`, for a person to review.

Every guess follows a short, explainable rule (a column's name plus what its values look like)
and is written with a `# guessed: <why> — review` comment. What cannot be guessed is written as a
string starting with `TODO`, which `validate_config` rejects: nobody runs an unread config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alliance.config import safe_yaml
from alliance.errors import ConfigError, InputError
from alliance.onboard.codings import CHOICES, guess_coding
from alliance.onboard.inspection import Inspection, declares_date_format
from alliance.onboard.profile import ColumnProfile, fmt, is_flag, value_span
from alliance.onboard.resistance import self_report_scale, staging_scale
from alliance.onboard.todos import is_todo, todo_entries
from alliance.onboard.vocabulary import DROP, matches, tokens
from alliance.onboard.yamltext import (
    COMMENT_MAX,
    SIMPLE_KEY_MAX,
    is_templating_key,
    key,
    scalar,
    visible,
)

INSTRUMENTS_DIR = "config/instruments"  # the schema default


@dataclass
class _V:
    """One config value with its end-of-line comment."""

    value: Any
    note: str = ""
    guessed: str = ""

    def comment(self) -> str:
        """The comment, on one line whatever data its text quotes."""
        if self.guessed:
            return f"  # guessed: {visible(self.guessed, COMMENT_MAX)} — review"
        return f"  # {visible(self.note, COMMENT_MAX)}" if self.note else ""


def _key_lines(pad: str, name: Any, rest: str) -> list[str]:
    """`key:<rest>`; a key too long for an implicit key is written as an explicit `? key`."""
    k = key(str(name))
    if len(k) > SIMPLE_KEY_MAX:
        return [f"{pad}? {k}", f"{pad}:{rest}"]
    return [f"{pad}{k}:{rest}"]


def _emit(node: dict[str, Any], indent: int, lines: list[str]) -> None:
    for name, val in node.items():
        pad = "  " * indent
        if isinstance(val, dict) and val:
            if indent == 0:
                lines.append("")
            lines += _key_lines(pad, name, "")
            _emit(val, indent + 1, lines)
            continue
        v = val if isinstance(val, _V) else _V(val)
        if isinstance(v.value, dict) and v.value:
            lines += _key_lines(pad, name, v.comment())
            _emit(v.value, indent + 1, lines)
        else:
            lines += _key_lines(pad, name, f" {scalar(v.value)}{v.comment()}")


def _plain(node: Any) -> Any:
    """The structure `_emit` writes, without comments: what the written file must read back as."""
    if isinstance(node, _V):
        return _plain(node.value)
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    return [_plain(v) for v in node] if isinstance(node, list | tuple) else node


RESISTANCE_ROLES = (
    "prior_failed_trials", "staging_score", "episode_months", "attendance", "doses_taken",
    "doses_prescribed", "adherence", "self_report_symptom",
)  # fmt: skip


def _role(ins: Inspection, role: str) -> _V:
    g = ins.chosen.get(role)
    if g is None and role in ins.unmapped:
        return _V(None, ins.unmapped[role])
    if g is None:
        return _V(None, "no candidate found: set it if the export has one")
    return _V(g.column, guessed=g.reason)


def _symptoms(ins: Inspection) -> dict[str, Any]:
    scale = ins.symptom_scale
    out: dict[str, Any] = {}
    total = ins.chosen.get("symptom")
    groups = [g for g in ins.item_groups if g.use == "symptoms"]
    prof = ins.profiles.get(f"sessions:{total.column}") if total else None
    inside = prof is not None and scale is not None and scale.low <= (prof.low or 0)
    inside = inside and (prof.high or 0) <= scale.high
    if scale is not None:
        out["label"] = _V(scale.label, guessed=f"{scale.label} name")
    elif total is not None:
        out["label"] = _V(total.column, guessed="the total column's name")
    if total is not None:
        out["column"] = _V(total.column, guessed=total.reason)
        out["items"] = _V(None, "a total column is used")
    elif groups:
        g = groups[0]
        out["column"] = _V(None, "no total column: scored from items")
        out["items"] = _V(g.pattern, guessed=f"{g.label}: {g.reason}")
    else:
        out["column"] = _V("TODO: symptom total column (or null and set symptoms.items)",
                           "no column named like hamd/bdi/phq/madrs/symptom/score")  # fmt: skip
        out["items"] = _V(None)
    if scale is not None and (total is None or inside):
        if scale.instrument:
            why = f"{scale.label} item key" + _shipped(scale.instrument)
            out["instrument"] = _V(scale.instrument, guessed=why)
        elif total is None:
            out["instrument"] = _V(f"TODO: instrument YAML for {scale.label} items (none shipped)",
                                   "needed to score items")  # fmt: skip
        out["min"] = _V(scale.low, guessed=f"{scale.label} total range")
        out["max"] = _V(scale.high, guessed=f"{scale.label} total range")
        out["higher_is_worse"] = _V(True, guessed=f"{scale.label}: higher = more symptoms")
        cut = "no conventional cut-off known to init: set from your protocol"
        out["remission_cutoff"] = (
            _V(scale.cutoff, guessed=f"convention: remission = {scale.label} <= {scale.cutoff}")
            if scale.cutoff is not None
            else _V(None, cut)
        )
        out["suicidality_max"] = _V(scale.suicide_max, guessed=f"{scale.label} suicide item range")
    else:
        seen = f"observed {value_span(prof)}" if prof else "range unknown"
        why = f"{scale.label} range exceeded, another version?" if scale else "unknown scale"
        out["min"] = _V(f"TODO: lowest possible total ({seen})", why)
        out["max"] = _V(f"TODO: highest possible total ({seen})", why)
    return out


def _shipped(instrument: str) -> str:
    """Warning when the instrument's key is not in the default instruments_dir (relative to the
    working directory, as the pipeline reads it)."""
    if (Path(INSTRUMENTS_DIR) / f"{instrument}.yaml").is_file():
        return ""
    return f"; no {INSTRUMENTS_DIR}/{instrument}.yaml here: add its scoring key"


def _alliance(ins: Inspection) -> dict[str, Any]:
    raters: dict[str, Any] = {}
    unclear = 0
    for g in ins.item_groups:
        if g.use in (None, "symptoms"):
            continue
        if g.use == "rater?":
            unclear += 1
            key = f"TODO_rater_{unclear}"
            note = "rename this key to patient, therapist or observer"
        else:
            key, note = g.use, ""
        if g.instrument:
            why = f"{len(g.columns)} items, values {fmt(g.low)}–{fmt(g.high)}"
            inst = _V(g.instrument, guessed=why + _shipped(g.instrument))
        else:
            wai12 = len(g.columns) == 12 and (g.high or 0) <= 5
            options = (
                "wai_sr (patient) or wai_sr_t (therapist form)" if wai12 else "instrument name"
            )
            inst = _V(f"TODO: {options}", f"{len(g.columns)} items {fmt(g.low)}–{fmt(g.high)}")
        raters[key] = {
            "instrument": inst,
            "items": _V(
                g.pattern, guessed=f"{g.label}: {g.reason}" + (f"; {note}" if note else "")
            ),
        }
    if not raters:
        others = [g for g in ins.item_groups if g.use is None and len(g.columns) >= 10]
        hint = f"; maybe {others[0].pattern} ({others[0].reason})" if others else ""
        raters["TODO_rater"] = {
            "instrument": _V("TODO: instrument name (e.g. wai_sr)"),
            "items": _V("TODO: regex of the alliance item columns, group 1 = item number",
                        f"no group of >= 10 items named wai/alliance/haq/calpas{hint}"),
        }  # fmt: skip
    return raters


def _missing_codes(ins: Inspection) -> _V:
    codes = ins.suggested_missing_codes
    clash = ins.missing_code_clashes
    where = "; ".join(
        f"{', '.join(map(fmt, cs))} in {visible(k)}" for k, cs in ins.suspicious.items()
    )
    todo = [
        f"TODO: {fmt(c)} looks like a missing code but is also a real value of "
        f"{', '.join(map(visible, clash[c][:4]))}; missing_codes applies to every column"
        for c in sorted(clash)
        if any(c in cs for cs in ins.suspicious.values())
    ]
    values: list[Any] = [int(c) if float(c).is_integer() else c for c in codes] + todo
    if not values:
        return _V([], "no suspicious codes found (SPSS user-missing values are honoured anyway)")
    return _V(values, guessed=f"suspicious codes: {where}; applies to every numeric column")


_FLAGS = {  # role -> (name words, class of 1, class of 0) for 0/1 flags
    "status": ((DROP, "dropout", "completed"),
               (frozenset({"complet*", "finish*"}), "completed", "dropout")),
    "modality": ((frozenset({"tele*", "video*"}), "telehealth", "in_person"),),
}  # fmt: skip


def _flag_class(role: str, prof: ColumnProfile, code: str) -> str | None:
    """Class of a code of a 0/1 flag named for one class (`dropout`, `COMPLETER`, `telehealth`);
    a labelled flag's label is traced back to its 0/1 code."""
    if not is_flag(prof):
        return None
    labels = prof.labelled.value_labels if prof.labelled is not None else None
    raw = next((k for k, v in (labels or {}).items() if str(v).strip() == code), code)
    try:
        one = float(raw) == 1
    except (TypeError, ValueError):
        return None
    for words, if_one, if_zero in _FLAGS.get(role, ()):
        if matches(tokens(prof.name), words):
            return if_one if one else if_zero
    return None


def _coding_block(role: str, prof: ColumnProfile) -> dict[str, _V]:
    """Code -> class for every code as the pipeline reads it (value labels applied); a 0/1
    dropout, completer or telehealth flag maps by its name.

    A code the config reader refuses as a key (a templating marker) is left out: the inspection
    notes it, and the clean stage reports its rows as unknown codes.
    """
    out: dict[str, _V] = {}
    for code in prof.as_read(True).codes or []:
        if is_templating_key(code):
            continue
        cls = guess_coding(role, code)
        why = f"'{visible(code)}' looks like {cls}"
        if cls is None:
            cls = _flag_class(role, prof, code)
            why = f"0/1 flag '{visible(prof.name)}'"
        if cls is None:
            out[code] = _V(f"TODO: {CHOICES[role]}", f"no rule recognises code '{visible(code)}'")
        else:
            out[code] = _V(cls, guessed=why)
    return out


def _arm_reference(arms: dict[str, _V]) -> _V:
    """null when an arm is guessed placebo (the models' default reference); otherwise which arm
    the models compare the others with is the trial's question: a TODO."""
    placebo = [code for code, v in arms.items() if v.value == "placebo"]
    if placebo:
        return _V(None, f"null: the first placebo arm ('{visible(sorted(placebo)[0])}') is the "
                  "models' reference")  # fmt: skip
    if not arms:
        return _V(None, "no arm column")
    codes = ", ".join(visible(c, 40) for c in list(arms)[:6]) + (", …" if len(arms) > 6 else "")
    return _V(
        f"TODO: reference arm code for the models ({codes}), or null if an arm is placebo",
        "the models compare every other arm with this one",
    )


def _resistance_blocks(ins: Inspection) -> dict[str, Any]:
    """`treatment_resistance` (the staging column's scale and range) and `self_report` (the
    self-report scale's label and range), for the columns guessed."""
    out: dict[str, Any] = {}
    staging = ins.chosen.get("staging_score")
    if staging is not None:
        scale, rng = staging_scale(staging.column)
        why = f"'{visible(staging.column)}' names it"
        todo = "TODO: thase_rush|msm|mgh_s|dm_trd|other"
        out["treatment_resistance"] = {
            "staging_scale": _V(scale, guessed=why) if scale else _V(todo, "scale of the score"),
            "staging_range": _V(rng, guessed=f"{scale}'s range")
            if rng
            else _V("TODO: [min, max] of the staging score", "checked on every value"),
            "trd_min_failed": _V(2, "TRD = at least 2 failed adequate trials"),
        }
    sr = ins.chosen.get("self_report_symptom")
    if sr is not None:
        label, low, high = self_report_scale(ins.profiles[f"{sr.table}:{sr.column}"])
        why = f"{label} name"
        out["self_report"] = {
            "label": _V(label, guessed=why),
            "min": _V(low, guessed=f"{label} range"),
            "max": _V(high, guessed=f"{label} range"),
        }
    return out


def starter_config(inspection: Inspection) -> str:
    """YAML text of a starter config; guesses carry `# guessed:` comments, unknowns are TODOs.

    Data values are written as one-line YAML scalars and comments quote data only through
    `visible`; the text is then read back with the project's safe reader and must give exactly the
    structure meant, else InputError (no export can shape the document).
    """
    ins = inspection
    data: dict[str, Any] = {
        "sessions": _V(ins.data_file, "relative to this config file's folder"),
        "patients": _V(ins.patients_file, "" if ins.patients_file else "no patients file given"),
        "layout": _V(ins.layout, guessed=ins.layout_reason),
    }
    if ins.layout == "wide":
        data["session_token"] = _V(ins.session_token, guessed="matches the session columns")
    data["missing_codes"] = _missing_codes(ins)
    if declares_date_format():
        data["date_format"] = (
            _V(None, "no day/month dates mapped: ISO and written-month dates need no format")
            if ins.date_format is None
            else _V(ins.date_format, ins.date_format_why)
            if is_todo(ins.date_format)
            else _V(ins.date_format, guessed=ins.date_format_why)
        )
    data["keep_columns"] = []
    cols: dict[str, Any] = {
        "patient": _role(ins, "patient") if "patient" in ins.chosen
        else _V("TODO: patient ID column", "no text/integer column with an ID-like name"),
        "session": _role(ins, "session") if ins.layout == "long"
        else _V(None, "wide layout: sessions come from the column names"),
    }  # fmt: skip
    if ins.layout == "long" and "session" not in ins.chosen and ins.n_rows == ins.n_patients:
        cols["session"] = _V(
            "TODO: session number column, or null with data.layout: wide and a "
            "data.session_token whose group 1 is the session number in the column names",
            "one row per patient and no number in the column names repeats over sessions",
        )
    elif ins.layout == "long" and "session" not in ins.chosen:
        cols["session"] = _V("TODO: session number column", "no integer 0–60 column varying "
                             "within patient with a session-like name")  # fmt: skip
    for role in ("date", "week", "therapist", "site", "arm", "modality", "status",
                 "dropout_session", "consent_date", "baseline_symptom", "suicidality",
                 "relapse_time", "relapse_event", "agency"):  # fmt: skip
        cols[role] = _role(ins, role)
    for role in RESISTANCE_ROLES:  # written only when guessed: most exports have none
        if role in ins.chosen:
            cols[role] = _role(ins, role)
    cov = [g.column for g in ins.covariates]
    cols["covariates"] = (
        _V(cov, guessed="; ".join(g.reason for g in ins.covariates)) if cov else _V([])
    )
    cols["personality"] = _V(
        {k: _V(g.column, guessed=g.reason) for k, g in ins.personality.items()} or {}
    )
    codings: dict[str, Any] = {}
    for role in ("arm", "modality", "status", "attendance"):
        if role == "attendance" and role not in ins.chosen:
            continue
        g = ins.chosen.get(role)
        prof = ins.profiles[f"{g.table}:{g.column}"] if g else None
        if prof is not None and prof.as_read(True).codes:
            codings[role] = _V(_coding_block(role, prof))
        else:
            codings[role] = _V({})
        if role == "arm":
            codings["arm_reference"] = _arm_reference(codings["arm"].value)
    config: dict[str, Any] = {
        "trial_name": _V(Path(ins.data_file).stem, guessed="the data file's name"),
        "seed": _V(20261127, "seed for every random step"),
        "data": data,
        "columns": cols,
        "codings": codings,
        "symptoms": _symptoms(ins),
        **_resistance_blocks(ins),
        "alliance": {
            "instruments_dir": _V(INSTRUMENTS_DIR, "shipped instrument keys + your own"),
            "raters": _alliance(ins),
        },
        "dropout": {
            "rule": _V("status", guessed="dropout as the status column says")
            if "status" in ins.chosen
            else _V("min_sessions", guessed="no status column"),
            "min_sessions": _V(12, "default; set to your protocol's adequate dose"),
        },
        "privacy": {
            "key_env": _V("ALLIANCE_PSEUDONYM_KEY", "export a secret key in this variable"),
        },
    }
    body: list[str] = []
    _emit(config, 0, body)
    n_todo = len(todo_entries(_plain(config)))
    lines = [
        f"# Starter config written by `alliance init` from {visible(ins.data_file, COMMENT_MAX)}.",
        "# Review every line marked `guessed`, then: alliance validate --configfile <this file>",
        "# Every key is documented in workflow/alliance/schemas/config.schema.yaml.",
    ]
    if n_todo:
        lines.append(f"# {n_todo} TODO(s) only you can answer: `alliance validate` lists them")
        lines.append("# first and fails until each is replaced.")
    lines += [f"# note: {visible(n, COMMENT_MAX)}" for n in ins.notes]
    lines += body
    text = "\n".join(lines).rstrip() + "\n"
    _check_reads_back(text, _plain(config), ins.data_file)
    return text


def _check_reads_back(text: str, meant: dict[str, Any], source: str) -> None:
    """The written text, read by the project's safe reader, is exactly the structure meant."""
    try:
        got = safe_yaml(text, "starter config")
    except ConfigError as exc:
        raise InputError(f"cannot write a safe starter config: {exc}", file=source) from None
    if got != meant:
        raise InputError(
            "cannot write a starter config that reads back as written (a value in the export "
            "defeats the YAML writer); please report this",
            file=source,
        )
