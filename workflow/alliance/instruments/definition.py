"""Instruments as data: load and check a questionnaire's scoring key from YAML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alliance.config import load_yaml_mapping
from alliance.errors import ConfigError


@dataclass(frozen=True)
class Instrument:
    """A Likert questionnaire's scoring key."""

    name: str
    label: str
    n_items: int
    low: float
    high: float
    subscales: dict[str, tuple[int, ...]]
    reverse: tuple[int, ...] = ()
    scoring: str = "mean"
    min_answered: float = 0.75
    total: bool = True
    item_ranges: dict[int, tuple[float, float]] = field(default_factory=dict)
    citation: str = ""
    verified: str = ""
    form: str = ""
    key_status: str = "unverified"
    sources: tuple[str, ...] = ()

    @property
    def items(self) -> tuple[int, ...]:
        return tuple(range(1, self.n_items + 1))

    @property
    def unverified(self) -> bool:
        """True unless `key_status: verified` (a key confirmed against the published sources)."""
        return self.key_status != "verified"

    def scales(self) -> list[tuple[str, tuple[int, ...]]]:
        """(scale name, item numbers) in scoring order: subscales as listed, then `total`."""
        out = list(self.subscales.items())
        if self.total:
            out.append(("total", self.items))
        return out

    def item_range(self, item: int) -> tuple[float, float]:
        """Allowed range of one item (instruments like HAM-D mix 0-2 and 0-4 items)."""
        return self.item_ranges.get(item, (self.low, self.high))


# The instrument YAML's keys and what each holds (unknown keys are an error).
INSTRUMENT_KEYS = {
    "name": "instrument name, equal to the file stem",
    "label": "display label",
    "form": "who answers the form: patient, therapist or observer",
    "items": "number of items, numbered 1..items as on the official form",
    "range": "[min, max] of a response",
    "subscales": "subscale -> item numbers (a partition: an item is in one subscale at most)",
    "reverse": "reverse-keyed item numbers (scored min + max - x)",
    "scoring": "mean or sum",
    "min_answered": "share of a scale's items needed for a score (prorating rule)",
    "total": "also score the total over all items",
    "item_ranges": "item -> [min, max] where an item differs from `range`",
    "citation": "the instrument's reference",
    "verified": "free-text note: what the key was checked against and what is uncertain",
    "key_status": (
        "verified (item count, range, subscale key and reverse items confirmed against the sources "
        "listed in `sources`) or unverified (refused at workflow start unless listed in "
        "alliance.allow_unverified_keys); absent means unverified"
    ),
    "sources": "where the key was confirmed (manual, paper, repository + path), what each says",
}
KEY_STATUSES = ("verified", "unverified")
# Words a `verified` note uses for a guessed key; such a note cannot go with key_status: verified.
UNCHECKED_WORDS = ("UNVERIFIED", "PLACEHOLDER")


def _problem(path: Path, key: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: key '{key}': {message}")


def _key_status(spec: dict[str, Any], path: Path) -> tuple[str, tuple[str, ...]]:
    """`key_status` and `sources`: a verified key names its sources and no guess in its note."""
    status = spec.get("key_status", "unverified")
    if status not in KEY_STATUSES:
        raise _problem(path, "key_status", f"{status!r} is not one of {', '.join(KEY_STATUSES)}")
    sources = spec.get("sources") or []
    if not isinstance(sources, list) or not all(isinstance(s, str) and s.strip() for s in sources):
        raise _problem(path, "sources", "must be a list of non-empty strings")
    if status == "verified":
        if not sources:
            raise _problem(
                path, "sources", "key_status: verified needs at least one source for the key"
            )
        note = str(spec.get("verified", ""))
        flagged = [w for w in UNCHECKED_WORDS if w in note]
        if flagged:
            raise _problem(
                path, "key_status", f"verified, but the `verified` note says {flagged[0]}"
            )
    return status, tuple(sources)


def parse_instrument(spec: dict[str, Any], path: Path) -> Instrument:
    """Build an Instrument from a YAML mapping, rejecting inconsistent keys."""
    allowed = set(INSTRUMENT_KEYS)
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise _problem(path, unknown[0], f"not allowed; allowed keys: {', '.join(sorted(allowed))}")
    for key in ("name", "items", "range", "subscales"):
        if key not in spec:
            raise _problem(path, key, "required")
    n_items = spec["items"]
    if not isinstance(n_items, int) or n_items < 1:
        raise _problem(path, "items", f"must be a positive item count, got {n_items!r}")
    low, high = spec["range"]
    if not low < high:
        raise _problem(path, "range", f"[{low}, {high}] must be [min, max] with min < max")
    valid = set(range(1, n_items + 1))
    subscales: dict[str, tuple[int, ...]] = {}
    owner: dict[int, str] = {}
    for name, members in (spec["subscales"] or {}).items():
        if name == "total":
            raise _problem(path, "subscales.total", "'total' is reserved for the total score")
        for item in members:
            if item not in valid:
                raise _problem(path, f"subscales.{name}", f"item {item} is not in 1..{n_items}")
            if item in owner:
                raise _problem(
                    path, f"subscales.{name}", f"item {item} is also in subscale '{owner[item]}'"
                )
            owner[item] = name
        subscales[name] = tuple(members)
    reverse = tuple(spec.get("reverse") or ())
    for item in reverse:
        if item not in valid:
            raise _problem(path, "reverse", f"item {item} is not in the item list 1..{n_items}")
    scoring = spec.get("scoring", "mean")
    if scoring not in ("mean", "sum"):
        raise _problem(path, "scoring", f"{scoring!r} is not one of 'mean', 'sum'")
    share = float(spec.get("min_answered", 0.75))
    if not 0 < share <= 1:
        raise _problem(path, "min_answered", f"{share} must be a share in (0, 1]")
    item_ranges = {}
    for item, rng in (spec.get("item_ranges") or {}).items():
        if int(item) not in valid:
            raise _problem(path, "item_ranges", f"item {item} is not in 1..{n_items}")
        item_ranges[int(item)] = (float(rng[0]), float(rng[1]))
    key_status, sources = _key_status(spec, path)
    return Instrument(
        name=str(spec["name"]),
        label=str(spec.get("label", spec["name"])),
        form=str(spec.get("form", "")),
        n_items=n_items,
        low=float(low),
        high=float(high),
        subscales=subscales,
        reverse=reverse,
        scoring=scoring,
        min_answered=share,
        total=bool(spec.get("total", True)),
        item_ranges=item_ranges,
        citation=str(spec.get("citation", "")),
        verified=str(spec.get("verified", "")),
        key_status=key_status,
        sources=sources,
    )


def load_instrument(
    name: str, directory: str | Path, defined: Mapping[str, Any] | None = None
) -> Instrument:
    """Instrument `name` from `defined` (config `alliance.instruments`), else
    `<directory>/<name>.yaml`; a name in both is refused (which key would be scored is unclear)."""
    path = Path(directory) / f"{name}.yaml"
    defined = defined or {}
    if name in defined:
        where = Path(f"config alliance.instruments.{name}")
        if path.exists():
            raise ConfigError(
                f"{where}: instrument '{name}' is also a file in {directory}; rename one of them"
            )
        spec = dict(defined[name])
        if spec.setdefault("name", name) != name:
            raise _problem(where, "name", f"{spec['name']!r} differs from the key {name!r}")
        return parse_instrument(spec, where)
    if not path.exists():
        known = sorted({*(p.stem for p in Path(directory).glob("*.yaml")), *defined})
        raise ConfigError(
            f"instrument '{name}' not found in {directory}; available: {', '.join(known) or 'none'}"
        )
    spec = load_yaml_mapping(path, "instrument file")
    return parse_instrument(spec, path)
