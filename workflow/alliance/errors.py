"""Errors that tell a user exactly where their input is wrong."""

from __future__ import annotations

from typing import Any


class InputError(Exception):
    """Bad input data: the message names file, row, column and value.

    `row` is the 1-based data row as a user sees it in the source table (header excluded).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        value: Any = None,
        check: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.row = row
        self.column = column
        self.value = value
        self.check = check
        super().__init__(self.__str__())

    def __str__(self) -> str:
        place = []
        if self.file is not None:
            place.append(str(self.file))
        if self.row is not None:
            place.append(f"row {self.row}")
        if self.column is not None:
            place.append(f"column '{self.column}'")
        if self.value is not None:
            place.append(f"value {self.value!r}")
        where = ", ".join(place)
        check = f" [{self.check}]" if self.check else ""
        return f"{where}: {self.message}{check}" if where else f"{self.message}{check}"


class ConfigError(Exception):
    """Bad configuration: the message names the key path and what is allowed."""
