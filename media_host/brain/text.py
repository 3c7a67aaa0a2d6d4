"""Text normalisation for the offline brain: contractions, spoken numbers, stemming, synonyms.

Two views of what a caller said are used:
- `spoken_to_digits(text)`: lowercase text where number words became digits ("four five six seven"
  -> "4 5 6 7", "forty five sixty seven" -> "45 67", "March third nineteen eighty" -> "march 3rd 19 80"),
  which the extractors (numbers, dates, money) read;
- `content_tokens(text)`: stemmed, synonym-folded tokens without stopwords, which routing compares.
Both are pure functions of their input, so the brain stays deterministic.
"""

from __future__ import annotations

import re
from functools import lru_cache

CONTRACTIONS = {
    "can't": "can not", "cannot": "can not", "won't": "will not", "n't": " not", "i'm": "i am", "'re": " are",
    "'ve": " have", "'ll": " will", "'d": " would", "let's": "let us", "it's": "it is", "that's": "that is",
    "what's": "what is", "there's": "there is", "here's": "here is", "where's": "where is", "who's": "who is",
    "how's": "how is", "name's": "name is",
}
_CONTRACTION_RE = re.compile("|".join(re.escape(k) for k in sorted(CONTRACTIONS, key=len, reverse=True)))

# Whisper and friends mishear a few phrases in predictable ways (see the STT reference transcripts).
MISHEARINGS = ((re.compile(r"\bcount number\b"), "account number"),
               (re.compile(r"\bday of birth\b"), "date of birth"))


def wordset(text: str) -> frozenset[str]:
    """A set of words written as one string (for long word lists)."""
    return frozenset(text.split())


def normalise(text: str) -> str:
    """Lowercase, straight apostrophes, contractions expanded, whitespace collapsed."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    text = _CONTRACTION_RE.sub(lambda m: CONTRACTIONS[m.group(0)], text)
    text = re.sub(r"\bo'? ?clock\b", "oclock", text)
    for pattern, replacement in MISHEARINGS:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


# --- spoken numbers ---------------------------------------------------------------------------------
UNITS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
         "nine": 9}
TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
         "seventeen": 17, "eighteen": 18, "nineteen": 19}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
        "eighty": 80, "ninety": 90}
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
            "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
            "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
            "twentieth": 20, "thirtieth": 30}
# "the first one", "that one": "one" is a pronoun after these, not a number.
PRONOUN_ONE_AFTER = {"the", "that", "this", "which", "any", "another", "other", "each", "every", "no", "some",
                     "earlier", "later", "last", "next", "same", "first", "second", "third", "fourth", "fifth",
                     "morning", "afternoon", "evening", "monday", "tuesday", "wednesday", "thursday", "friday",
                     "saturday", "sunday", "new", "old", "right", "good", "better"}


def _kind(word: str) -> str | None:
    if word in UNITS:
        return "unit"
    if word in TEENS:
        return "teen"
    if word in TENS:
        return "tens"
    if word in SCALES:
        return "scale"
    if word in ORDINALS:
        return "ordinal"
    return None


def ordinal_suffix(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


class _Group:
    """One spoken number being assembled: "one hundred twenty five" -> 125."""

    def __init__(self) -> None:
        self.total = 0  # thousands and above, already closed
        self.part = 0  # below a thousand
        self.last: str | None = None
        self.ordinal = False
        self.zero = False

    def value(self) -> int:
        return self.total + self.part

    def text(self) -> str:
        if self.zero:
            return "0"
        n = self.value()
        return f"{n}{ordinal_suffix(n)}" if self.ordinal else str(n)

    def accepts(self, kind: str, value: int) -> bool:
        last, part = self.last, self.part
        if self.ordinal or self.zero or last is None:
            return False
        if kind == "scale":
            if value == 100:
                return last in ("unit", "teen", "tens") and part % 100 == part and part > 0 and part < 100
            return last in ("unit", "teen", "tens", "scale") and 0 < self.value() < value and part > 0
        if last == "tens" and kind in ("unit", "ordinal") and part % 10 == 0 and value < 10:
            return True
        return last == "scale" and kind in ("unit", "teen", "tens", "ordinal") and part % 100 == 0

    def add(self, kind: str, value: int) -> None:
        if kind == "scale":
            if value == 100:
                self.part *= 100
            else:
                self.total = (self.total + self.part) * value
                self.part = 0
        else:
            self.part += value
        self.ordinal = kind == "ordinal"
        self.last = kind


def _word_value(word: str) -> tuple[str, int] | None:
    kind = _kind(word)
    if kind is None:
        return None
    table = {"unit": UNITS, "teen": TEENS, "tens": TENS, "scale": SCALES, "ordinal": ORDINALS}[kind]
    return kind, table[word]


def _groups(words: list[str]) -> list[str]:
    """A run of number words as the digit groups a listener hears: "forty five sixty seven" -> 45, 67."""
    out: list[str] = []
    group: _Group | None = None
    for word in words:
        if word in ("oh", "o"):
            if group is not None:
                out.append(group.text())
            group = _Group()
            group.zero, group.last = True, "unit"
            continue
        kind_value = _word_value("one" if word == "a" else word)  # "a hundred", "a thousand"
        if kind_value is None:
            continue
        kind, value = kind_value
        if group is not None and group.accepts(kind, value):
            group.add(kind, value)
            continue
        if group is not None:
            out.append(group.text())
        group = _Group()
        if kind == "scale":
            group.part = 1
            group.last = "unit"
        group.add(kind, value)
    if group is not None:
        out.append(group.text())
    return out


_WORD_RE = re.compile(r"[a-z]+|\d+(?:st|nd|rd|th)?|[^a-z\d]+")


def _is_number_word(prev: str, word: str, nxt: str) -> bool:
    """Whether `word` is spoken as a number here (`prev`/`nxt`: the neighbouring words or digits)."""
    if word == "one":
        if (prev[:1].isdigit() or prev in ("oclock", "am", "pm")) and _kind(nxt) is None and not nxt.isdigit():
            return False  # "the 10:30 one", "the 4 o'clock one"
        return prev not in PRONOUN_ONE_AFTER or _kind(nxt) is not None or nxt.isdigit()
    if word in ("oh", "o"):
        return _kind(prev) in ("unit", "teen", "tens") or prev.isdigit() or _kind(nxt) == "unit" or nxt.isdigit()
    if word == "a":
        return nxt in ("hundred", "thousand")
    if word == "second":
        return prev in ("the", "my", "your", "that", "a", "and") or _kind(prev) == "tens"
    return _kind(word) is not None


def spoken_to_digits(text: str) -> str:
    """Normalised text with number words written as digits. Separate spoken groups stay separate
    ("45 67"), so callers of this decide whether a run is one number or a sequence of digits."""
    pieces = _WORD_RE.findall(normalise(text))
    alnum = [k for k, p in enumerate(pieces) if p[0].isalnum()]  # indices of words and numbers
    tokens = [pieces[k] for k in alnum]

    def number_word(n: int) -> bool:
        if not tokens[n][0].isalpha():
            return False
        prev = tokens[n - 1] if n > 0 else ""
        nxt = tokens[n + 1] if n + 1 < len(tokens) else ""
        return _is_number_word(prev, tokens[n], nxt)

    def joinable(n: int) -> bool:  # the separator between token n-1 and token n allows one number
        return not "".join(pieces[alnum[n - 1] + 1:alnum[n]]).strip(" ,-")

    out: list[str] = []
    done = 0  # pieces before this index are written
    n = 0
    while n < len(tokens):
        if not number_word(n):
            n += 1
            continue
        run, m = [tokens[n]], n + 1
        while m < len(tokens) and joinable(m):
            if tokens[m] == "and" and run[-1] in SCALES and m + 1 < len(tokens) and joinable(m + 1) \
                    and _kind(tokens[m + 1]) is not None:
                m += 1  # "one hundred and five"
                continue
            if not number_word(m):
                break
            run.append(tokens[m])
            m += 1
        out.extend(pieces[done:alnum[n]])
        out.append(" ".join(_groups(run)))
        done = alnum[m - 1] + 1
        n = m
    out.extend(pieces[done:])
    return "".join(out)


# --- routing tokens ------------------------------------------------------------------------------------
STOPWORDS = wordset("""
a an the i me my mine myself you your yours we us our ours it its itself is am are was were be been being to of in
on at for with about and or but so do does did have has had having this that these those there here what which who
whom whose how would could can will shall should may might must please like want wanted wanting need needs needed
just some any get got gets let hi hello hey um uh er erm oh okay ok yes yeah well also really very too up out if
then than them they their he she his her him as by from into onto over again all am im id ive also today now
right actually maybe perhaps kind sort thing things something anything know think wonder wondering help tell
calling call ring one bit lot quick quickly go going gonna wanna sir madam miss mister hello thanks thank
""")

# Irregular forms a suffix stripper would miss, folded to one stem.
IRREGULAR = {
    "stolen": "steal", "stole": "steal", "theft": "steal", "thief": "steal", "robbed": "steal", "rob": "steal",
    "lost": "lose", "losing": "lose", "misplaced": "lose", "missing": "lose", "spent": "spend", "took": "take",
    "taken": "take", "paid": "pay", "bought": "buy", "broken": "break", "broke": "break", "went": "go",
    "sent": "send", "left": "leave", "felt": "feel", "feeling": "feel", "gave": "give", "given": "give",
    "made": "make", "said": "say", "told": "tell", "thought": "think", "came": "come", "fell": "fall",
    "hurt": "pain", "hurts": "pain", "ache": "pain", "aches": "pain", "aching": "pain", "sore": "pain",
    "recognise": "recogn", "recognize": "recogn", "recognised": "recogn", "recognized": "recogn",
    "children": "child", "kids": "child", "kid": "child", "son": "child", "daughter": "child", "baby": "child",
    "people": "human", "dr": "doctor", "doc": "doctor", "gp": "doctor", "physician": "doctor",
}
# Words that mean the same thing to a phone agent, folded to one token after stemming.
SYNONYMS = {
    "person": "human", "representative": "human", "rep": "human", "operator": "human", "agent": "human",
    "colleague": "human", "advisor": "human", "adviser": "human", "staff": "human", "somebody": "someone",
    "talk": "speak", "chat": "speak", "connect": "speak",
    "freez": "block", "frozen": "block", "lock": "block", "deactivat": "block",
    "appt": "appointment", "visit": "appointment", "booking": "book", "schedul": "book", "reserv": "book",
    "ill": "sick", "unwell": "sick", "nause": "sick", "temperature": "fever",
    "purchas": "transaction", "payment": "transaction", "charg": "transaction", "spend": "transaction",
    "buy": "transaction",
    "auto": "car", "vehicl": "car", "hom": "mortgage", "hous": "mortgage",
    "hack": "compromis", "scam": "fraud", "fraudul": "fraud", "unauthoris": "fraud", "unauthoriz": "fraud",
    "replac": "replace", "replacement": "replace", "substitut": "replace",
    "verif": "verify", "verifi": "verify", "identiti": "identity", "authenticat": "verify",
    "bye": "goodbye", "cheer": "thank",
}
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
MONTH_ABBREVIATIONS = {m[:3]: m for m in MONTHS} | {"sept": "september"}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def stem(word: str) -> str:
    """A light, deterministic suffix stripper: enough to match "blocked"/"block" and "cards"/"card"."""
    if word in IRREGULAR:
        return IRREGULAR[word]
    w = word
    if len(w) > 7 and w.endswith("ment"):
        w = w[:-4]
    elif len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 3 and w.endswith("ed"):
        w = w[:-2] if len(w) > 5 else w[:-1]
    elif len(w) > 4 and w.endswith(("ches", "shes", "sses", "xes")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    elif len(w) > 5 and w.endswith("ly"):
        w = w[:-2]
    if w != word and len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]  # stopped -> stop
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    if len(w) > 5 and w.endswith(("is", "iz")) and not word.endswith(("is", "iz")):
        w = w[:-2]  # recognis(e) -> recogn
    return w


@lru_cache(maxsize=4096)
def token(word: str) -> str:
    """The routing token of one normalised word ("" for a stopword)."""
    if word in STOPWORDS:
        return ""
    if word[0].isdigit():
        return "#"
    if word in MONTHS or word in MONTH_ABBREVIATIONS:
        return "#month"
    if word in WEEKDAYS:
        return "#weekday"
    stemmed = stem(word)
    return SYNONYMS.get(stemmed, SYNONYMS.get(word, stemmed))


_TOKEN_RE = re.compile(r"\d+(?:st|nd|rd|th)?|[a-z]+")


def words(text: str) -> list[str]:
    """Normalised words and numbers, numbers written as digits."""
    return _TOKEN_RE.findall(spoken_to_digits(text))


# Words for how a caller feels also count as "symptom", so a symptom no example names still finds the nurse.
SYMPTOMS = frozenset(stem(w) for w in wordset("""fever pain headache migraine cough cold flu rash itch itchy vomit
vomiting throwing nausea sick dizzy dizziness faint bleeding bleed swelling swollen sprain sprained twisted ankle knee
back chest stomach belly diarrhea earache ear throat breathing breathe infection burn burning cut wound bruise injury
injured allergy allergic asthma wheezing tired fatigue sore ache aching hurt hurts temperature chills"""))


def content_tokens(text: str) -> list[str]:
    """Routing tokens, in order, stopwords dropped (negation kept as "not")."""
    out: list[str] = []
    for word in words(text):
        if word in ("no", "not", "never", "nt"):
            out.append("not")
            continue
        t = token(word)
        if t:
            out.append(t)
            if t in SYMPTOMS or stem(word) in SYMPTOMS:
                out.append("symptom")
    return out


_SENTENCE_RE = re.compile(r"[^.!?]+[.!?]*")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_RE.findall(text) if s.strip()]
