"""Analyzers: text -> the terms a keyword index holds.

An analyzer lower-cases the text, splits it into words of two or more word characters (the
pattern of scikit-learn's CountVectorizer, as bm25s splits), drops the language's stop words
(bm25s's lists) and stems what is left with the Snowball stemmer of the language (PyStemmer).
"en" gives exactly the terms `bm25s.tokenize(texts, stopwords="en", stemmer=english)` gives,
which is what vdb.text.bm25 indexed before collections had keyword indexes. "simple" only
lower-cases and splits.

Example:
    >>> get("en").terms("The cats are sitting on the mats")
    ['cat', 'sit', 'mat']
"""

import re
import threading
from dataclasses import dataclass

from vdb.errors import InvalidArgumentError, shown

TOKEN = re.compile(r"\w{2,}")  # the words of (?u)\b\w\w+\b, found faster
MAX_CACHE = 1 << 19  # surface words remembered with their term; the cache restarts beyond


@dataclass(frozen=True)
class Language:
    stemmer: str | None  # PyStemmer algorithm
    stopwords: str | None  # name of the list in bm25s.stopwords


LANGUAGES = {
    "en": Language("english", "STOPWORDS_EN"),
    "da": Language("danish", "STOPWORDS_DANISH"),
    "de": Language("german", "STOPWORDS_GERMAN"),
    "es": Language("spanish", "STOPWORDS_SPANISH"),
    "fr": Language("french", "STOPWORDS_FRENCH"),
    "it": Language("italian", "STOPWORDS_ITALIAN"),
    "nl": Language("dutch", "STOPWORDS_DUTCH"),
    "no": Language("norwegian", "STOPWORDS_NORWEGIAN"),
    "pt": Language("portuguese", "STOPWORDS_PORTUGUESE"),
    "ru": Language("russian", "STOPWORDS_RUSSIAN"),
    "sv": Language("swedish", "STOPWORDS_SWEDISH"),
    "tr": Language("turkish", "STOPWORDS_TURKISH"),
    "simple": Language(None, None),
}
NAMES = tuple(LANGUAGES)


def check_name(name) -> str:
    """name if it names an analyzer, else InvalidArgumentError listing them."""
    if not isinstance(name, str) or name not in LANGUAGES:
        raise InvalidArgumentError(
            f"unknown analyzer {shown(name)}; expected one of {', '.join(NAMES)}"
        )
    return name


class Analyzer:
    """The terms of texts in one language. Thread-safe; surface words seen before are not
    stemmed again."""

    def __init__(self, name: str):
        import Stemmer
        from bm25s import stopwords

        lang = LANGUAGES[check_name(name)]
        self.name = name
        self._stop = frozenset(getattr(stopwords, lang.stopwords)) if lang.stopwords else ()
        self._stemmer = Stemmer.Stemmer(lang.stemmer) if lang.stemmer else None
        self._stem_lock = threading.Lock()  # a PyStemmer stemmer serves one thread at a time
        self._cache: dict[str, str] = {}  # surface word -> term ("" for a stop word)

    def terms(self, text: str) -> list[str]:
        """The terms of one text, in order, repeats kept."""
        return self.analyze([text])[0]

    def analyze(self, texts: list[str]) -> list[list[str]]:
        """The terms of each text (stemming each new surface word of the batch once)."""
        words = [_words(text.lower()) for text in texts]
        get = self._known(words).__getitem__
        return [list(filter(None, map(get, ws))) for ws in words]

    def _known(self, words: list[list[str]]) -> dict[str, str]:
        """A map holding the term of every word in words."""
        cache = self._cache
        new = {w for ws in words for w in ws if w not in cache}  # not set - keys(): that
        # copies every key of the cache into a set first
        if not new:
            return cache
        kept = [w for w in new if w not in self._stop and len(w) > 1]
        if self._stemmer is not None and kept:
            with self._stem_lock:
                stems = self._stemmer.stemWords(kept)
        else:
            stems = kept
        found = dict.fromkeys(new, "")
        found.update(zip(kept, stems, strict=True))
        if len(cache) + len(found) > MAX_CACHE:  # start a new cache (entries are never removed
            self._cache = dict(found)  # from a dict, so a thread reading the old one is safe)
            return _Both(found, cache)
        cache.update(found)
        return cache


_NOT_WORD = bytes(
    c if c < 128 and (chr(c).isalnum() or c == ord("_")) else ord(" ") for c in range(256)
)  # ASCII: word characters kept, every other byte a space


def _words(text: str) -> list[str]:
    """The words of a lower-cased text as TOKEN finds them, and for ASCII text its words of
    one character too (the analyzer maps them to no term): an ASCII text is split by bytes
    (several times faster than the pattern), any other by the pattern."""
    if text.isascii():
        return text.encode().translate(_NOT_WORD).decode().split()
    return TOKEN.findall(text)


class _Both(dict):
    """The words in found, then those of an older cache (without copying it)."""

    def __init__(self, found: dict, cache: dict):
        super().__init__(found)
        self._cache = cache

    def __missing__(self, word: str) -> str:
        return self._cache[word]


_analyzers: dict[str, Analyzer] = {}
_lock = threading.Lock()


def get(name: str) -> Analyzer:
    """The shared analyzer of this name (InvalidArgumentError for an unknown name)."""
    check_name(name)
    with _lock:
        found = _analyzers.get(name)
        if found is None:
            found = _analyzers[name] = Analyzer(name)
        return found
