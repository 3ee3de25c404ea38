"""Numbers in column names: which one counts sessions, and which columns number items.

A wide export repeats each session-level variable once per session, so the session number is
the number that varies across otherwise identical names: `HAMD_S01..HAMD_S04`, the `03` of
`WAIp_s03_i07`, the `3` of `Visit3_WAI_12`. Every number in a name is a candidate together with
what marks it (a session word such as s, visit, t, wave; or a bare separator), wherever it sits
and whatever its case. Each candidate is turned into a session token (a regex whose group 1 is
the session number) and scored the way the pipeline will apply it: the token that, removed from
the names, leaves the most columns repeated across sessions wins, a marked token counting
double. What is left once the token is removed (`WAIp_i07`, `HAMD03`) are the long names; a
family of long names that differ in one number only is an item group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from alliance.onboard.vocabulary import tokens

# Words that mark a session number (compared lower-case); `t` is also a rater word (WAI_T_07),
# so it marks sessions only where a number follows it.
SESSION_WORDS = frozenset({
    "s", "ses", "sess", "session", "sitzung", "v", "vis", "visit", "t", "tp", "time",
    "timepoint", "w", "wk", "week", "wave", "welle", "fu", "mo", "month", "occ", "occasion",
    "termin", "day", "assessment", "assess",
})  # fmt: skip
# Words that mark an item number: never a session token.
ITEM_WORDS = frozenset({"i", "it", "item", "q", "qu", "question", "frage", "nr", "no"})
SEPARATORS = "_.- "
MAX_SESSION = 200  # higher numbers are years, codes or item banks, not sessions


@dataclass(frozen=True)
class Mark:
    """How one number in a name is marked: where it is, its word and separators."""

    where: str  # start | inner | bare-end | bare-inner
    word: str  # the session word as written ("" for a bare number)
    before: str  # separator before the word (inner, bare-*)
    after: str  # separator after the number (start, bare-inner), or what follows (inner)


def _word_before(name: str, start: int) -> str:
    """The session word written just before position `start` (`WAIp_s` -> s, `Visit` ->
    Visit, `hamdS` -> S), or "" when the letters there are no session word."""
    m = re.search(r"[^\W\d_]+$", name[:start])
    if not m:
        return ""
    letters = m.group()
    if letters.lower() in SESSION_WORDS:
        return letters
    last = tokens(letters)
    if len(last) > 1 and last[-1] in SESSION_WORDS and letters.lower().endswith(last[-1]):
        tail = letters[-len(last[-1]) :]
        head = letters[: -len(tail)]
        # a case change marks the boundary: hamdS, WAIs (not a word that merely ends in s)
        if head and (head[-1].isupper() != tail[0].isupper()):
            return tail
    return ""


def marks(name: str) -> list[Mark]:
    """How each number in `name` that could be a session number is marked."""
    out: list[Mark] = []
    for m in re.finditer(r"\d+", name):
        a, b = m.span()
        word = _word_before(name, a)
        w0 = a - len(word)
        after = name[b : b + 1]
        if word and w0 == 0:
            out.append(Mark("start", word, "", after if after and after in SEPARATORS else ""))
        elif word:
            before = name[w0 - 1] if name[w0 - 1] in SEPARATORS else ""
            if after and after not in SEPARATORS and not (after.isupper() and word[0].isupper()):
                continue  # `s3a`: the number runs into a word (`S3Item` starts a new one)
            out.append(Mark("inner", word, before, after))
        elif a > 0 and name[a - 1] in SEPARATORS:
            letters = re.search(r"[^\W\d_]+$", name[: a - 1])
            if letters and letters.group().lower() in ITEM_WORDS:
                continue  # `item_3`, `q_07`: an item number
            if b == len(name):
                out.append(Mark("bare-end", "", name[a - 1], ""))
            elif re.fullmatch(r"[_.\- ]\d+", name[b:]):
                out.append(Mark("bare-inner", "", name[a - 1], name[b]))
    return out


def _key(mark: Mark) -> tuple[str, str, str]:
    """Marks that one token covers: same place kind, word (any case) and separator."""
    if mark.where == "start":
        return ("start", mark.word.lower(), mark.after)
    if mark.where == "inner":
        return ("inner", mark.word.lower(), mark.before)
    return (mark.where, "", mark.before + mark.after)


def _token(seen: list[Mark]) -> str:
    """The regex for marks of one key, as narrow as the names allow."""
    first = seen[0]
    words = {m.word for m in seen}
    word = re.escape(first.word) if len(words) == 1 else re.escape(first.word.lower())
    flag = "" if len(words) == 1 else "(?i)"
    if first.where == "start":
        return f"{flag}^{word}(\\d+){re.escape(first.after)}"
    if first.where == "bare-end":
        return f"{re.escape(first.before)}(\\d+)$"
    if first.where == "bare-inner":
        return f"{re.escape(first.before)}(\\d+)(?={re.escape(first.after)}\\d+$)"
    tails = {m.after for m in seen}
    if tails == {""}:
        tail = "$"
    else:
        seps = "".join(sorted(re.escape(t) if t in SEPARATORS else t for t in tails if t))
        tail = f"(?=[{seps}]|$)" if "" in tails else f"(?=[{seps}])"
    return f"{flag}{re.escape(first.before)}{word}(\\d+){tail}"


@dataclass
class TokenFit:
    """A session token and what it does to the column names."""

    token: str
    marked: bool  # a session word marks the number (not a bare separator)
    split: dict[str, tuple[str, int]]  # column -> (long name, session)
    repeated: int = 0  # columns whose long name occurs at two or more sessions
    agree: int = 0  # of those, columns whose long name has the most common set of sessions
    n_sets: int = 0  # distinct sets of sessions among repeated long names
    sessions: list[int] = field(default_factory=list)
    at_end: bool = False

    @property
    def score(self) -> tuple:
        """Higher is better: columns repeated over the common sessions (a marked token counts
        double), then fewer distinct session sets, a token at the end, fewer sessions."""
        weight = 2 if self.marked else 1
        return (self.agree * weight, -self.n_sets, self.at_end, -len(self.sessions))


def fit_token(token: str, names: list[str], marked: bool = True) -> TokenFit | None:
    """How `token` splits `names` as the pipeline's reshape does (search, remove the match,
    group 1 = session); None when two columns would give one variable at one session, or the
    token is no regex with a group."""
    try:
        rx = re.compile(token)
    except re.error:
        return None
    if rx.groups < 1:
        return None
    split: dict[str, tuple[str, int]] = {}
    seen: dict[tuple[str, int], str] = {}
    for name in names:
        m = rx.search(name)
        if not m or not (m.group(1) or "").isdigit():
            continue
        stem, session = name[: m.start()] + name[m.end() :], int(m.group(1))
        if not stem or (stem, session) in seen:
            return None
        seen[(stem, session)] = name
        split[name] = (stem, session)
    by_stem: dict[str, set[int]] = {}
    for stem, session in split.values():
        by_stem.setdefault(stem, set()).add(session)
    repeated = {s for s, sessions in by_stem.items() if len(sessions) >= 2}
    fit = TokenFit(token, marked, split)
    fit.repeated = sum(stem in repeated for stem, _ in split.values())
    sets: dict[frozenset[int], int] = {}
    for stem in repeated:
        key = frozenset(by_stem[stem])
        sets[key] = sets.get(key, 0) + len(key)
    fit.agree, fit.n_sets = max(sets.values(), default=0), len(sets)
    fit.sessions = sorted({n for s in repeated for n in by_stem[s]})
    fit.at_end = token.endswith("$")
    return fit


def session_tokens(names: list[str]) -> list[TokenFit]:
    """Candidate session tokens for these column names, best first; only tokens that repeat at
    least two columns over at least two sessions numbered up to `MAX_SESSION`."""
    groups: dict[tuple[str, str, str], list[Mark]] = {}
    for name in names:
        for mark in marks(name):
            groups.setdefault(_key(mark), []).append(mark)
    candidates = [(_token(seen), not key[0].startswith("bare")) for key, seen in groups.items()]
    # `hamd_3` with `wai_p_3_07`: a sole last number, or the first of the last two
    ends = {k[2]: _token(v) for k, v in groups.items() if k[0] == "bare-end"}
    for key, seen in groups.items():
        if key[0] == "bare-inner" and key[2][0] in ends:
            inner = _token(seen)
            candidates.append((inner.replace("(?=", "(?:$|(?=", 1) + ")", False))
    fits = []
    for token, marked in candidates:
        fit = fit_token(token, names, marked=marked)
        if fit is None or fit.repeated < 2 or len(fit.sessions) < 2:
            continue
        if fit.sessions[-1] > MAX_SESSION:
            continue
        fits.append(fit)
    return sorted(fits, key=lambda f: f.score, reverse=True)


@dataclass(frozen=True)
class Family:
    """Names that differ in one number only: `HAMD01..HAMD17`, `WAI_07_P`."""

    prefix: str
    suffix: str
    columns: dict[int, str]

    @property
    def pattern(self) -> str:
        """Regex for the config: group 1 = item number."""
        return f"^{re.escape(self.prefix)}(\\d+){re.escape(self.suffix)}$"

    @property
    def stem(self) -> str:
        """The name without its number, for reading words from it."""
        return self.prefix + self.suffix


def number_families(names: list[str], minimum: int = 3) -> list[Family]:
    """Families of at least `minimum` names differing in one number that no session word marks
    (`HAMD_S01..S04` counts sessions, not items); each name in one family only (the larger
    family keeps it), in the order the names come."""
    found: dict[tuple[str, str], dict[int, str]] = {}
    for name in names:
        for m in re.finditer(r"\d+", name):
            if _word_before(name, m.start()).lower() not in ("", "t"):
                continue
            found.setdefault((name[: m.start()], name[m.end() :]), {})[int(m.group())] = name
    ranked = sorted(
        ((k, v) for k, v in found.items() if len(v) >= minimum),
        key=lambda kv: (-len(kv[1]), re.search(r"\d", kv[0][1]) is not None, kv[0]),
    )
    taken: set[str] = set()
    out = []
    for (prefix, suffix), cols in ranked:
        if taken & set(cols.values()):
            continue
        taken |= set(cols.values())
        out.append(Family(prefix, suffix, dict(sorted(cols.items()))))
    place = {name: i for i, name in enumerate(names)}
    return sorted(out, key=lambda f: min(place[c] for c in f.columns.values()))
