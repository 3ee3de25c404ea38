"""Collect data problems with their place, and apply the configured policy to each.

Every problem found becomes one row of `validation.csv` (file, row, column, value, check,
action). Checks with policy `error` are gathered and raised together so a user fixes them in one
pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alliance.clean.readers.table import clip, name_text, shown_name, value_text
from alliance.errors import InputError
from alliance.files import shareable_path

ROW = "_row"
FILE = "_file"
MAX_LISTED = 15  # lines (one per check x column) in a ValidationFailed message
ROWS_SHOWN = 5  # row numbers shown for a check that fires on many rows
VALUES_SHOWN = 3  # distinct values shown for it

VALIDATION_COLUMNS = ["file", "row", "column", "value", "check", "action", "message"]


class ValidationFailed(InputError):
    """One or more checks with policy `error` failed; `problems` lists them all.

    The message gives one line per check x file x column x message: a check that fires on many
    rows shows their count and the first few rows, not hundreds of identical lines.
    """

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(
            first["message"],
            file=first["file"],
            row=first["row"],
            column=shown_name(first["column"]),
            value=clip(first["value"]),
            check=first["check"],
        )

    def __str__(self) -> str:
        lines = group_lines(self.problems)
        more = len(lines) - MAX_LISTED
        lines = lines[:MAX_LISTED]
        if more > 0:
            lines.append(f"... and {more} more kinds (run `alliance validate` for every row)")
        head = f"{len(self.problems)} data problem(s) with policy 'error':"
        return head + "\n  " + "\n  ".join(lines)


def group_lines(problems: list[dict[str, Any]]) -> list[str]:
    """One line per check x file x column x message, in order of first appearance.

    A single problem reads as before (file, row, column, value: message [check]); a group reads
    `file, column 'c': N rows (rows 2, 5, 9, ...; values 9.0, 99.0): message [check]`.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for p in problems:
        key = (p["check"], p["file"], p["column"], p["message"])
        groups.setdefault(key, []).append(p)
    return [
        _describe(group[0]) if len(group) == 1 else _summarise(group) for group in groups.values()
    ]


def _summarise(group: list[dict[str, Any]]) -> str:
    first = group[0]
    rows = [p["row"] for p in group if p["row"] is not None]
    values = list(dict.fromkeys(value_text(p["value"]) for p in group if p["value"] is not None))
    parts = []
    if rows:
        shown = ", ".join(map(str, rows[:ROWS_SHOWN])) + (", ..." if len(rows) > ROWS_SHOWN else "")
        parts.append(f"rows {shown}")
    if values:
        more = ", ..." if len(values) > VALUES_SHOWN else ""
        parts.append(
            f"{'values' if len(values) > 1 else 'value'} {', '.join(values[:VALUES_SHOWN])}{more}"
        )
    detail = f" ({'; '.join(parts)})" if parts else ""
    place = [str(first["file"])] if first["file"] is not None else []
    if first["column"] is not None:
        place.append(f"column '{name_text(str(first['column']))}'")
    head = f"{', '.join(place)}: " if place else ""
    return f"{head}{len(group)} rows{detail}: {first['message']} [{first['check']}]"


def _describe(p: dict[str, Any]) -> str:
    return str(
        InputError(
            p["message"], file=p["file"], row=p["row"], column=shown_name(p["column"]),
            value=clip(p["value"]), check=p["check"],
        )
    )  # fmt: skip


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return value


@dataclass
class Problems:
    """Problem log plus the policy table from config `checks`."""

    policies: dict[str, str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        check: str,
        message: str,
        *,
        file: str | None,
        row: int | None = None,
        column: str | None = None,
        value: Any = None,
        action: str | None = None,
    ) -> None:
        """Record one problem; `action` overrides the policy (e.g. 'skipped' for analyses)."""
        self.rows.append(
            {
                "file": file,
                "row": None if row is None else int(row),
                "column": column,
                "value": _plain(value),
                "check": check,
                "action": action or self.policies.get(check, "error"),
                "message": message,
            }
        )

    def flag(
        self,
        frame: pd.DataFrame,
        mask: pd.Series,
        check: str,
        message: str,
        *,
        column: str | None,
        source_column: str | None = None,
    ) -> pd.DataFrame:
        """Record every row of `frame` where `mask` holds and apply the policy; return the frame."""
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return frame
        action = self.policies.get(check, "error")
        hits = frame.loc[mask]
        values = hits[column] if column in hits else pd.Series([None] * len(hits), index=hits.index)
        for file, row, value in zip(hits[FILE], hits[ROW], values, strict=True):
            self.add(
                check, message, file=file, row=row, column=source_column or column, value=value
            )
        if action == "drop_row":
            return frame.loc[~mask]
        if action == "set_missing" and column is not None:
            frame = frame.copy()
            frame.loc[mask, column] = np.nan
        return frame

    def raise_errors(self) -> None:
        """Raise ValidationFailed if any recorded problem has action `error`."""
        errors = [p for p in self.rows if p["action"] == "error"]
        if errors:
            raise ValidationFailed(errors)

    def frame(self) -> pd.DataFrame:
        """validation.csv content, in a stable order."""
        out = pd.DataFrame(self.rows, columns=VALIDATION_COLUMNS)
        # relative to the project (or the bare file name): no absolute home path in a shared file
        out["file"] = out["file"].map(shareable_path, na_action="ignore")
        return out.astype({"row": "Int64"})
