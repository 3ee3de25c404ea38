"""Name words that tie a column to a role, the symptom scales init knows, and name matching.

Shared by the profile, item-group, role and coding guessers so each rule reads the same words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Name words: a token of the column name must equal a word, or start with it when it ends in `*`.
ID = frozenset({"id", "pid", "ptid", "patid", "subject*", "subj", "patient*", "pat", "case",
                "code", "participant*", "person", "proband*", "record"})  # fmt: skip
SESSION_NAMES = (
    frozenset({"session*", "sess", "ses", "visit*", "sitzung*", "termin*", "occasion*", "besuch*",
               "seance*", "assessment*"}),
    frozenset({"wave*", "time", "timepoint*", "tp", "t"}),
    frozenset({"week*", "wk", "woche*"}),
)  # fmt: skip
THERAPIST = frozenset({"therapist*", "therapeut*", "clinician*", "counsel*", "provider*",
                       "behandler*", "ther"})  # fmt: skip
SITE = frozenset({"site*", "centre*", "center*", "clinic", "location*", "standort*", "zentrum*"})
ARM = frozenset({"arm", "group*", "grp", "condition*", "cond", "treat", "treatment", "tx",
                 "allocation", "alloc", "randomi*", "gruppe*", "bedingung*"})  # fmt: skip
MODALITY = frozenset({"modality*", "mode", "setting*", "format", "delivery", "tele*", "video*",
                      "remote", "online"})  # fmt: skip
STATUS = frozenset({"status", "completion", "completer*", "disposition", "termination"})
CONSENT = frozenset({"consent*", "random*", "enrol*", "inclusion*", "einwillig*", "baseline",
                     "screen*"})  # fmt: skip
BASELINE = frozenset({"baseline", "bl", "base", "pre", "screen*", "intake"})
RELAPSE = frozenset({"relaps*", "recur*", "rezidiv*", "rueckfall*"})
TIME = frozenset({"time", "week*", "wk", "day*", "month*", "t", "fu", "follow*", "duration",
                  "surv*"})  # fmt: skip
SUICIDE = frozenset({"suicid*", "suizid*"})
AGENCY = frozenset({"agency", "agentic", "dominance", "dom"})
DROP = frozenset({"drop*"})
DATE_NAMES = frozenset({"date", "datum", "visit*", "session*"})
RATER = frozenset({"rater"})
TRAITS = {"agreeab": "agreeableness", "extravers": "extraversion", "extrovers": "extraversion",
          "openness": "openness", "conscientious": "conscientiousness",
          "neurotic": "neuroticism"}  # fmt: skip
ALLIANCE = frozenset({"wai*", "allian*", "haq*", "calpas*"})
GENERIC_SYMPTOM = frozenset({"symptom*", "score", "total", "sum", "severity"})
# Treatment resistance (alliance.onboard.resistance): prior failures, staging, episode, schedule,
# medication doses, self-report symptom scales.
FAILED = frozenset({"fail*", "priortx*", "prevtx*", "nonrespon*", "atrq*"})
PRIOR = frozenset({"prior*", "previous*", "prev", "past"})
TRIALS = frozenset({"tx", "trial*", "treatment*", "ad", "ads", "antidepress*"})
STAGING = frozenset({"stag*", "thase*", "msm", "maudsley*", "mgh*", "dmtrd", "trd"})
EPISODE = frozenset({"episode*", "epi", "mde"})
ATTEND = frozenset({"attend*", "noshow*", "dna", "appointment*", "appt*", "show*", "kept"})
DOSES = frozenset({"pill*", "dose*", "doses", "tablet*", "capsule*", "med*", "tab", "tabs"})
TAKEN = frozenset({"taken", "take*", "used", "count*", "returned"})
PRESCRIBED = frozenset({"prescri*", "dispens*", "expected", "planned", "rx"})
ADHERENCE = frozenset({"adheren*", "complian*", "mars*", "mmas*"})
SELF_REPORT = frozenset({"phq*", "qids*", "bdi*", "sr", "selfreport*", "self"})
RATER_WORDS = {
    "patient": frozenset({"p", "pt", "pat", "patient", "client", "c", "cl", "self"}),
    "therapist": frozenset({"t", "th", "ther", "therapist", "tr", "clinician", "counsel*"}),
    "observer": frozenset({"o", "obs", "observer", "judge", "rater"}),
}


@dataclass(frozen=True)
class Scale:
    """A symptom scale the rules know: its total range and a conventional remission cut-off."""

    label: str
    words: frozenset[str]
    low: int
    high: int
    cutoff: int | None
    instrument: str | None  # shipped item key (config/instruments), for scoring items
    n_items: int
    item_high: int
    suicide_item: int
    suicide_max: int


SCALES = (
    Scale("HAM-D 17", frozenset({"hamd", "hdrs", "hrsd", "ham", "hamilton"}), 0, 52, 7,
          "hamd17", 17, 4, 3, 4),
    Scale("BDI-II", frozenset({"bdi"}), 0, 63, 13, None, 21, 3, 9, 3),
    Scale("PHQ-9", frozenset({"phq"}), 0, 27, 4, None, 9, 3, 9, 3),
    Scale("MADRS", frozenset({"madrs"}), 0, 60, None, None, 10, 6, 10, 6),
)  # fmt: skip
SYMPTOM_NAMES = GENERIC_SYMPTOM.union(*(s.words for s in SCALES))
# (items, highest value) -> instrument; patient/therapist forms of the WAI-SR differ.
ALLIANCE_FORMS = {(12, 5): "wai_sr", (12, 7): "wai_s", (36, 7): "wai", (19, 6): "haq2",
                  (24, 7): "calpas"}  # fmt: skip


_CAPS_THEN_LOWER = re.compile(r"(?<![A-Za-z])([A-Z]{2,})([a-z]+)(?![A-Za-z])")


def tokens(name: str) -> list[str]:
    """Lower-case words of a name: `PatientID` -> patient, id; `WAI_P_i07` -> wai, p, i, 07.

    An upper-case run glued to lower case (`WAIp`, `HAMDtot`) is also read as two words
    (wai, p), after the camel-case reading (wa, ip): exports abbreviate that way."""
    out: list[str] = []
    extra: list[str] = []
    for part in re.split(r"[\W_]+", str(name)):
        out += re.findall(r"\d+|[A-Z]+(?![a-z])|[A-Z]?[^\W\d_A-Z]+", part)
        for m in _CAPS_THEN_LOWER.finditer(part):
            extra += [m.group(1), m.group(2)]
    return [t.lower() for t in out + extra if t]


def matches(toks: list[str], words: frozenset[str]) -> bool:
    """A token equals a word, or starts with a word written with a trailing `*`."""
    return any(t == w or (w.endswith("*") and t.startswith(w[:-1])) for t in toks for w in words)
