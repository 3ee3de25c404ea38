"""Spreadsheet formulas without a stored value: the cells openpyxl would read as empty.

openpyxl reads the value Excel stored with each formula (the cell's `<v>`); a workbook written by
a script, or by a library that does not compute formulas, stores none, and its formula cells
would silently be missing data. This finds them in the sheet's XML. A formula whose stored result
is an empty string (`t="str"`, as `=IF(A2="","",A2)` gives) is a real empty value, not reported.
The XML is parsed, never evaluated; a part that cannot be parsed finds nothing.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

# Any formula element in a worksheet part: <f>...</f>, <f t="shared" .../>, or with a prefix.
_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")
_REF = re.compile(r"([A-Z]{1,3})(\d+)")


def uncached_formulas(path: Path, sheet: str) -> dict[tuple[int, int], str]:
    """(sheet row, 0-based column) -> '=formula' for each formula cell without a stored value."""
    try:
        with zipfile.ZipFile(path) as archive:
            part = _sheet_part(archive, sheet)
            data = archive.read(part) if part else b""
        if not _FORMULA.search(data):
            return {}
        return _scan(data)
    except (OSError, KeyError, zipfile.BadZipFile, ElementTree.ParseError):
        return {}


def _scan(data: bytes) -> dict[tuple[int, int], str]:
    found: dict[tuple[int, int], str] = {}
    for _, elem in ElementTree.iterparse(io.BytesIO(data)):
        if _local(elem.tag) != "c":
            continue
        children = {_local(child.tag): child for child in elem}
        formula, value = children.get("f"), children.get("v")
        stored = value is not None and (value.text or elem.get("t") == "str")
        ref = _REF.fullmatch(elem.get("r") or "")
        if formula is not None and not stored and ref:
            text = f"={formula.text}" if formula.text else "=(shared formula)"
            found[(int(ref[2]), _column_index(ref[1]))] = text
        elem.clear()
    return found


def _sheet_part(archive: zipfile.ZipFile, sheet: str) -> str | None:
    """The zip member holding the worksheet named `sheet` (workbook.xml and its relationships)."""
    book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    rel_id = None
    for elem in book.iter():
        if _local(elem.tag) == "sheet" and elem.get("name") == sheet:
            rel_id = next((v for k, v in elem.attrib.items() if _local(k) == "id"), None)
    rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    for elem in rels.iter():
        if _local(elem.tag) == "Relationship" and elem.get("Id") == rel_id:
            target = elem.get("Target") or ""
            if target.startswith("/"):
                return target.lstrip("/")
            return posixpath.normpath(posixpath.join("xl", target))
    return None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _column_index(letters: str) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - ord("A") + 1
    return index - 1
