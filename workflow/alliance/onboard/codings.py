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
    "status": (
        ("not_started", frozenset({"notstart*", "nonstart*", "never*", "notrandomi*"})),
        ("dropout", frozenset({"drop*", "withdr*", "discontinu*", "lost", "incomplet*",
                               "abbruch*", "early"})),
        ("completed", frozenset({"complet*", "finish*", "done", "regular*", "abgeschlossen"})),
    ),
}  # fmt: skip
CHOICES = {
    "arm": "psychotherapy|drug|placebo|other",
    "modality": "in_person|telehealth",
    "status": "completed|dropout|not_started|other",
}


def guess_coding(role: str, code: str) -> str | None:
    """Class of one arm/modality/status code from words in it, or None when no rule applies."""
    toks = tokens(code)
    words = [*toks, "".join(toks)]
    hits = [cls for cls, pats in CODE_WORDS[role] if matches(words, pats)]
    if role == "arm":
        return hits[0] if len(hits) == 1 else None  # e.g. CBT+IMI: combined, ask
    return hits[0] if hits else None
