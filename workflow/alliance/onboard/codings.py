"""Code classes: which arm, modality or status class a code such as `CBT` or `video` stands for."""

from __future__ import annotations

from alliance.onboard.vocabulary import matches, tokens

# Words in a code (tokens or the code with separators removed); `*` marks a prefix. For status and
# modality the first class that matches wins; an arm code matching two classes is left to the user.
CODE_WORDS: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {
    "arm": (
        ("placebo", frozenset({"pla*", "pbo*"})),
        ("drug", frozenset({"imi*", "drug*", "med*", "ssri*", "snri*", "tca", "adm", "pharm*",
                            "fluoxetin*", "sertralin*", "paroxetin*", "citalopram*",
                            "escitalopram*", "fluvoxamin*", "venlafaxin*", "duloxetin*",
                            "nortriptylin*", "amitriptylin*", "bupropion*", "mirtazapin*"})),
        ("psychotherapy", frozenset({"cbt*", "ipt*", "psychotherap*", "therapy", "dbt",
                                     "psychodynam*", "pdt", "ba"})),
    ),
    "modality": (
        ("telehealth", frozenset({"video*", "tele*", "phone*", "online", "remote", "zoom",
                                  "web*"})),
        ("in_person", frozenset({"person", "inperson", "office", "face*", "clinic",
                                 "praesenz", "präsenz"})),
    ),
    "attendance": (
        ("no_show", frozenset({"noshow*", "dna", "missed", "absent", "not", "nicht*"})),
        ("cancelled", frozenset({"cancel*", "resched*", "abgesagt", "storn*"})),
        ("attended", frozenset({"attend*", "present", "held", "seen", "kept", "yes",
                                "erschienen", "wahrgenommen"})),
    ),
    "status": (
        ("not_started", frozenset({"notstart*", "nonstart*", "never*", "notrandomi*"})),
        ("dropout", frozenset({"drop*", "withdr*", "discontinu*", "lost", "incomplet*",
                               "abbruch*", "early"})),
        ("completed", frozenset({"complet*", "finish*", "done", "regular*", "abgeschlossen"})),
    ),
}  # fmt: skip
CHOICES = {
    "arm": "psychotherapy|drug|placebo|combination|other",
    "modality": "in_person|telehealth",
    "status": "completed|dropout|not_started|other",
    "attendance": "attended|cancelled|no_show",
}


def guess_coding(role: str, code: str) -> str | None:
    """Class of one arm/modality/status code from words in it, or None when no rule applies."""
    toks = tokens(code)
    words = [*toks, "".join(toks)]
    hits = [cls for cls, pats in CODE_WORDS[role] if matches(words, pats)]
    if role == "arm":
        if set(hits) == {"drug", "psychotherapy"}:  # e.g. CBT+IMI, ssri_cbt: both at once
            return "combination"
        return hits[0] if len(hits) == 1 else None
    return hits[0] if hits else None
