"""What a reader must know about a model beside its numbers, read from its fit.json.

`model_note` is the spec's `options.note` (the model stage copies it into fit.json as `note`);
`model_details` what the model kind writes about the fit (fit.json `notes`);
`model_caveats` lists what the fit itself reported: engine warnings verbatim, terms dropped from
the spec and why (e.g. a pre-treatment baseline missing on every row), coding notes of the
frame, a singular or non-converged fit. `is_sensitivity` says whether the spec marked the model
as a sensitivity analysis (`options.sensitivity: true`, copied into fit.json as `sensitivity`).

All of it is plain text from config or data: every writer escapes it for its own format (HTML
on the overview page, mathtext on figures).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value not in (None, "") else ""


def model_note(fit: Mapping[str, Any] | None) -> str:
    """The spec's note (`options.note`), whitespace folded to single spaces; "" when none."""
    if not fit:
        return ""
    options = fit.get("options") if isinstance(fit.get("options"), Mapping) else {}
    return _text(fit.get("note") or (options or {}).get("note"))


def model_details(fit: Mapping[str, Any] | None) -> list[str]:
    """What the model kind itself says about the fit (fit.json `notes`, e.g. the RI-CLPM's waves
    and reliability), each whitespace-folded; [] when none."""
    notes = (fit or {}).get("notes")
    if isinstance(notes, str):
        notes = [notes]
    return [t for t in (_text(n) for n in notes or []) if t]


def is_sensitivity(fit: Mapping[str, Any] | None) -> bool:
    """True when the spec marked the model a sensitivity analysis (`options.sensitivity`)."""
    if not fit:
        return False
    options = fit.get("options") if isinstance(fit.get("options"), Mapping) else {}
    flag = fit.get("sensitivity", (options or {}).get("sensitivity", False))
    return flag is True or str(flag).lower() == "true"


def model_caveats(fit: Mapping[str, Any] | None) -> list[str]:
    """Warnings, dropped terms, frame notes and fit problems of one model, each once, in order."""
    if not fit:
        return []
    out: list[str] = []
    frame = fit.get("frame") if isinstance(fit.get("frame"), Mapping) else {}
    for dropped in (frame or {}).get("dropped_terms") or []:
        if isinstance(dropped, Mapping):
            term, why = _text(dropped.get("term")), _text(dropped.get("reason"))
            out.append(f"term {term} left out: {why}" if why else f"term {term} left out")
        else:
            out.append(f"term left out: {_text(dropped)}")
    out += [_text(n) for n in (frame or {}).get("notes") or []]
    warnings = [_text(w) for w in fit.get("warnings") or []]
    out += warnings
    if fit.get("singular") and not any("singular" in w.lower() for w in warnings):
        out.append("singular fit (a variance component is estimated at about 0)")
    if fit.get("converged") is False and not any("converge" in w.lower() for w in warnings):
        out.append("the fit did not converge")
    return [c for c in dict.fromkeys(out) if c]
