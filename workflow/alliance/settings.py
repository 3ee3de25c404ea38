"""The validated config as frozen, typed sections, and the per-stage views the rules pass on.

`load_config` / `validate_config` (alliance.config) fill defaults from the JSON schema and check
it; `Settings.from_config` then parses that dict once. Field names equal the schema's keys (a
test walks the schema), and no default is repeated here: every value comes from the filled
config. Each stage entry point takes only its own view (`CleanSettings`, `ScoreSettings`,
`ModelSettings`, `RenderSettings`); its canonical JSON is what a rule passes as a param, so an
edit to a section reruns exactly the jobs that read it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
import os
import re
import typing
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Self, TypeVar

from alliance.config import validate_config
from alliance.instruments.definition import Instrument, load_instrument


def _freeze(value: Any) -> Any:
    """Lists -> tuples and dicts -> read-only mappings, recursively."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    """The inverse of `_freeze`: JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


V = TypeVar("V", bound="Section")


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type hint, in field order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


class Section:
    """Base of every config section: built from its (defaults-filled) mapping, dumped back."""

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Self:
        """The section from its mapping; nested sections are parsed by their own class."""
        values = {}
        for name, hint in _field_types(cls).items():
            value = raw[name]
            nested = isinstance(hint, type) and issubclass(hint, Section)
            values[name] = hint.from_mapping(value) if nested else _freeze(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready) of the section, keys as in the config file."""
        return _plain(self)

    def view(self, cls: type[V]) -> V:
        """The narrower view `cls`, filled from this object's fields of the same names."""
        return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class DataSettings(Section):
    """`data`: where the export is and how to read it."""

    sessions: str
    patients: str | None
    layout: str
    session_token: str
    sheet: str | int | None
    encoding: str
    delimiter: str
    # A list for every data column, or per column: {"default": (...), COLUMN: (...)}.
    missing_codes: tuple[float, ...] | Mapping[str, tuple[float, ...]]
    date_format: str | None
    keep_columns: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ColumnSettings(Section):
    """`columns`: the source column of each role (None when the export lacks it)."""

    patient: str
    session: str | None
    date: str | None
    week: str | None
    therapist: str | None
    site: str | None
    arm: str | None
    modality: str | None
    status: str | None
    dropout_session: str | None
    consent_date: str | None
    baseline_symptom: str | None
    suicidality: str | None
    relapse_time: str | None
    relapse_event: str | None
    agency: str | None
    prior_failed_trials: str | None
    staging_score: str | None
    episode_months: str | None
    attendance: str | None
    missed_before: str | None
    doses_taken: str | None
    doses_prescribed: str | None
    adherence: str | None
    self_report_symptom: str | None
    covariates: tuple[str, ...]
    personality: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class CodingSettings(Section):
    """`codings`: how the export codes arms, modality and status."""

    arm: Mapping[str, str]
    arm_reference: str | None
    modality: Mapping[str, str]
    status: Mapping[str, str]
    attendance: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class SymptomSettings(Section):
    """`symptoms`: the session-wise symptom measure and its cut-offs."""

    label: str
    column: str | None
    items: str | None
    instrument: str | None
    min: float
    max: float
    higher_is_worse: bool
    response_reduction: float
    remission_cutoff: float | None
    suicidality_threshold: float
    suicidality_max: float
    relapse_population: str


@dataclasses.dataclass(frozen=True)
class TreatmentResistanceSettings(Section):
    """`treatment_resistance`: the staging score's scale, range and centre, and the TRD
    definition."""

    staging_scale: str | None
    staging_range: tuple[float, float] | None
    staging_centre: float | None
    trd_min_failed: int

    def stage_centre(self) -> float | None:
        """The staging score the models' `stage` is centred at: `staging_centre`, else the
        midpoint of `staging_range` (None without a range). A fixed point of the scale, not the
        sample mean, so the alliance main effect means the same slope in every trial."""
        if self.staging_centre is not None:
            return float(self.staging_centre)
        if not self.staging_range:
            return None
        low, high = self.staging_range
        return (float(low) + float(high)) / 2.0


@dataclasses.dataclass(frozen=True)
class SelfReportSettings(Section):
    """`self_report`: the patient self-report symptom scale beside the clinician rating."""

    label: str
    min: float
    max: float


@dataclasses.dataclass(frozen=True)
class AllianceSettings(Section):
    """`alliance`: instrument folder, instruments defined in the config, per rater instrument and
    item-column regex, and the instruments whose unconfirmed keys the user accepts
    (alliance.instruments.status)."""

    instruments_dir: str
    instruments: Mapping[str, Mapping[str, Any]]
    raters: Mapping[str, Mapping[str, str] | None]
    allow_unverified_keys: tuple[str, ...]

    def rater_specs(self) -> dict[str, Mapping[str, str]]:
        """Configured raters only (a rater set to null or absent is left out)."""
        return {name: spec for name, spec in self.raters.items() if spec}

    def instrument(self, name: str) -> Instrument:
        """Instrument `name`: from `alliance.instruments`, else the YAML in instruments_dir."""
        return load_instrument(name, self.instruments_dir, _plain(self.instruments))


@dataclasses.dataclass(frozen=True)
class RuptureSettings(Section):
    """`score.ruptures`: rupture-repair detection."""

    ks: tuple[float, ...]
    m: int
    sd: str
    min_sessions: int


@dataclasses.dataclass(frozen=True)
class ScoreOptions(Section):
    """`score`: which alliance score the models use and how it is decomposed."""

    rater: str
    scale: str
    detrend: bool
    early_window: tuple[int, int]
    early_session: int | None
    ruptures: RuptureSettings


@dataclasses.dataclass(frozen=True)
class BootstrapSettings(Section):
    """`bootstrap`: cluster-bootstrap CIs for chosen models."""

    models: tuple[str, ...]
    n_boot: int
    shards: int
    cluster: str
    level: float


@dataclasses.dataclass(frozen=True)
class SensitivityGrid(Section):
    """`sensitivity.grid`: alternative score settings, every combination one cell."""

    early_window: tuple[tuple[int, int], ...]
    detrend: tuple[bool, ...]
    rater: tuple[str, ...]
    scale: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class SensitivitySettings(Section):
    """`sensitivity`: models refitted over the grid, in `shards` jobs."""

    models: tuple[str, ...]
    shards: int
    grid: SensitivityGrid


@dataclasses.dataclass(frozen=True)
class DropoutSettings(Section):
    """`dropout`: how dropout is defined."""

    rule: str
    min_sessions: int


@dataclasses.dataclass(frozen=True)
class CheckSettings(Section):
    """`checks`: the policy of each data check (error, drop_row, set_missing, warn)."""

    out_of_range: str
    non_numeric: str
    bad_session: str
    duplicate_session: str
    session_order: str
    repeated_date: str
    bad_date: str
    future_date: str
    before_consent: str
    after_dropout: str
    therapist_conflict: str
    arm_conflict: str
    unknown_arm: str
    unknown_code: str
    unknown_patient: str
    relapse_time: str
    single_patient_therapist: str
    empty_rating: str
    missed_with_scores: str
    doses_exceed_prescribed: str

    def policies(self) -> dict[str, str]:
        """Check name -> policy."""
        return self.to_dict()


@dataclasses.dataclass(frozen=True)
class ModelsSettings(Section):
    """`models`: default set on/off, disabled defaults, custom specs (parsed by models.spec)."""

    use_defaults: bool
    disable: tuple[str, ...]
    custom: tuple[Mapping[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class MultiplicitySettings(Section):
    """`multiplicity`: families of key p-values (`model.term`) and the adjustments reported."""

    primary: tuple[str, ...]
    secondary: str | tuple[str, ...]
    methods: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class PrivacySettings(Section):
    """`privacy`: pseudonym key source, the smallest count shown in descriptive tables, and
    whether the participant flow is suppressed too."""

    key_env: str
    key: str | None
    min_cell: int
    suppress_small_cells: bool

    def fingerprint(self) -> str | None:
        """A keyed digest of the key the run will use (environment first, then config).

        Stands in for the key wherever settings are serialised (rule params end up in Snakemake's
        metadata and in report.html): it changes when the key changes, so the clean stage reruns,
        and it reveals nothing about a key of the required strength.
        """
        key = os.environ.get(self.key_env) or self.key
        if not key:
            return None
        digest = hmac.new(key.encode(), b"alliance-outcomes/key-fingerprint", hashlib.sha256)
        return f"fingerprint:{digest.hexdigest()[:16]}"


# Inside JSON strings, characters that matter where params land: Snakemake reads `{name}` in a
# param as a wildcard and embeds params in report.html inside a <script> element. The \uXXXX
# forms decode to the same values.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_INERT = {c: f"\\u{ord(c):04x}" for c in "{}<>&"}


def _inert(match: re.Match[str]) -> str:
    return "".join(_INERT.get(c, c) for c in match.group(0))


class StageSettings(Section):
    """A stage's view: a few sections, serialised canonically for the rule's params."""

    def to_json(self) -> str:
        """Canonical JSON: fields in their fixed order and mappings in config order, so equal
        configs give equal strings and order that reaches outputs survives the round trip (rater
        order orders the score rows; sorted keys would lose it). The pseudonym key never appears:
        its fingerprint stands in (the clean script takes the key from config or environment)."""
        plain = self.to_dict()
        privacy = getattr(self, "privacy", None)
        if isinstance(privacy, PrivacySettings):
            plain["privacy"]["key"] = privacy.fingerprint()
        return _JSON_STRING.sub(_inert, json.dumps(plain, separators=(",", ":")))

    @classmethod
    def from_json(cls, text: str) -> Self:
        """The view back from `to_json` output (what a Snakemake script receives)."""
        return cls.from_mapping(json.loads(text))


@dataclasses.dataclass(frozen=True)
class Settings(StageSettings):
    """The whole validated config, one typed section per top-level key."""

    trial_name: str
    seed: int
    output: str
    data: DataSettings
    columns: ColumnSettings
    codings: CodingSettings
    symptoms: SymptomSettings
    alliance: AllianceSettings
    score: ScoreOptions
    bootstrap: BootstrapSettings
    sensitivity: SensitivitySettings
    treatment_resistance: TreatmentResistanceSettings
    self_report: SelfReportSettings
    dropout: DropoutSettings
    checks: CheckSettings
    models: ModelsSettings
    multiplicity: MultiplicitySettings
    privacy: PrivacySettings

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Validate `config` (filling schema defaults) and parse it into typed sections."""
        return cls.from_mapping(validate_config(dict(config)))

    def clean(self) -> CleanSettings:
        """What the clean stage reads."""
        return self.view(CleanSettings)

    def score_stage(self) -> ScoreSettings:
        """What the score stage reads."""
        return self.view(ScoreSettings)

    def model_stage(self) -> ModelSettings:
        """What the model stage reads."""
        return self.view(ModelSettings)

    def model_summary(self) -> SummarySettings:
        """What the model summary reads (model specs and the multiplicity families)."""
        return self.view(SummarySettings)

    def bootstrap_study(self) -> BootstrapRun:
        """What the model bootstrap reads (the model stage's view plus `bootstrap`)."""
        return self.view(BootstrapRun)

    def sensitivity_study(self) -> SensitivityRun:
        """What the sensitivity grid reads (score and model views plus `sensitivity`)."""
        return self.view(SensitivityRun)

    def render(self) -> RenderSettings:
        """What the render stage reads."""
        return self.view(RenderSettings)


@dataclasses.dataclass(frozen=True)
class CleanSettings(StageSettings):
    """Everything the clean stage reads: read, map, check, derive, pseudonymise."""

    data: DataSettings
    columns: ColumnSettings
    codings: CodingSettings
    symptoms: SymptomSettings
    alliance: AllianceSettings
    treatment_resistance: TreatmentResistanceSettings
    self_report: SelfReportSettings
    dropout: DropoutSettings
    checks: CheckSettings
    privacy: PrivacySettings


@dataclasses.dataclass(frozen=True)
class ScoreSettings(StageSettings):
    """Everything the score stage reads: instruments per rater and the score options."""

    alliance: AllianceSettings
    score: ScoreOptions


@dataclasses.dataclass(frozen=True)
class ModelSettings(StageSettings):
    """Everything the model stage reads: seed, arm codings, symptom direction, model specs."""

    seed: int
    codings: CodingSettings
    symptoms: SymptomSettings
    models: ModelsSettings

    def for_model(self, spec: Mapping[str, Any]) -> ModelSettings:
        """This view with `models` narrowed to one resolved spec (as a custom spec, defaults off):
        a model job's params then change only when its own spec or the shared values change."""
        only = ModelsSettings(use_defaults=False, disable=(), custom=(_freeze(dict(spec)),))
        return dataclasses.replace(self, models=only)


@dataclasses.dataclass(frozen=True)
class SummarySettings(StageSettings):
    """Everything results/models/summary.csv reads: the model specs (labels, key terms) and the
    multiplicity families, so an edit to `multiplicity` reruns the summary, not the models."""

    models: ModelsSettings
    multiplicity: MultiplicitySettings


@dataclasses.dataclass(frozen=True)
class RenderSettings(StageSettings):
    """Everything figures, tables and the overview read from config (Table 1 lists the
    covariates and personality traits of `columns`; the treatment-resistance figures name the
    TRD definition)."""

    trial_name: str
    seed: int
    columns: ColumnSettings
    symptoms: SymptomSettings
    alliance: AllianceSettings
    codings: CodingSettings
    score: ScoreOptions
    treatment_resistance: TreatmentResistanceSettings
    privacy: PrivacySettings


@dataclasses.dataclass(frozen=True)
class BootstrapRun(StageSettings):
    """Everything the model bootstrap reads."""

    seed: int
    codings: CodingSettings
    symptoms: SymptomSettings
    models: ModelsSettings
    bootstrap: BootstrapSettings

    def model_stage(self) -> ModelSettings:
        """The model stage's view, for refitting."""
        return self.view(ModelSettings)


@dataclasses.dataclass(frozen=True)
class SensitivityRun(StageSettings):
    """Everything the sensitivity grid reads."""

    seed: int
    codings: CodingSettings
    symptoms: SymptomSettings
    models: ModelsSettings
    alliance: AllianceSettings
    score: ScoreOptions
    sensitivity: SensitivitySettings

    def score_stage(self) -> ScoreSettings:
        """The score stage's view, before the grid overrides score options."""
        return self.view(ScoreSettings)

    def model_stage(self) -> ModelSettings:
        """The model stage's view, for refitting."""
        return self.view(ModelSettings)
