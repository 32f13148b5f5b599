"""Text normalisation and tokenisation shared by the reward functions, with bounded caches.

Words are runs of letters/digits (any script); scripts written without spaces (Chinese, Japanese kana,
Thai, Lao, Khmer, Myanmar) are split into single characters, so non-Latin text gets real tokens
instead of one giant token or nothing. On ASCII text the ROUGE tokens equal rouge-score's own
tokenizer with its Porter stemmer (tests check this).

Caches: tokenisation is cached per text (texts up to ``CACHE_MAX_CHARS`` only, so a hostile megabyte
string cannot pin memory), Porter stems per word. A GRPO group repeats its reference n times and a
vocabulary repeats across a batch, so both caches pay off in the worker processes, which live as
long as the server.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from nltk.stem.porter import PorterStemmer

CACHE_MAX_CHARS = 4096

# Scripts written without spaces between words: tokenised one character at a time.
_NO_SPACE_RANGES = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3100-\u312f"  # Bopomofo
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0002ebef"  # CJK extensions B-F
)
# One character of a no-space script, or a run of other letters/digits. Linear time: no nesting.
_TOKEN_RE = re.compile(f"[{_NO_SPACE_RANGES}]|[^\\W_{_NO_SPACE_RANGES}]+")
_NO_SPACE_RE = re.compile(f"[{_NO_SPACE_RANGES}]")
_ARTICLES = frozenset({"a", "an", "the"})


def _uncached_words(text: str) -> tuple[str, ...]:
    return tuple(_TOKEN_RE.findall(unicodedata.normalize("NFKC", text).lower()))


_cached_words = functools.lru_cache(maxsize=16384)(_uncached_words)


def words(text: str) -> tuple[str, ...]:
    """Lower-cased word tokens of ``text`` (NFKC): letter/digit runs, one token per CJK/kana/Thai character.

    >>> words("The cat's 2 hats, 猫很好")
    ('the', 'cat', 's', '2', 'hats', '猫', '很', '好')
    """
    return _cached_words(text) if len(text) <= CACHE_MAX_CHARS else _uncached_words(text)


def has_no_space_script(text: str) -> bool:
    """True when ``text`` holds a character of a script written without spaces (e.g. Chinese)."""
    return _NO_SPACE_RE.search(text) is not None


class CachedPorterStemmer(PorterStemmer):
    """nltk's PorterStemmer (same mode, same output) with a per-word cache.

    Stemming is the most expensive part of ROUGE with stemming and of METEOR's stem stage; a word's
    stem never changes, so it is computed once per worker process (the cache is a dict, emptied
    when it reaches ``cache_size`` words).
    """

    def __init__(self, mode: str = PorterStemmer.NLTK_EXTENSIONS, cache_size: int = 200_000) -> None:
        super().__init__(mode)
        self.cache_size = cache_size
        self._cache: dict[tuple[str, bool], str] = {}

    def stem(self, word: str, to_lowercase: bool = True) -> str:  # noqa: D102 - same contract as nltk's
        key = (word, to_lowercase)
        stem = self._cache.get(key)
        if stem is None:
            stem = super().stem(word, to_lowercase)
            if len(word) <= 64:  # no English word is this long; do not let junk fill the cache
                if len(self._cache) >= self.cache_size:
                    self._cache.clear()
                self._cache[key] = stem
        return stem


STEMMER = CachedPorterStemmer()


class RougeTokenizer:
    """A rouge-score tokenizer (``.tokenize(text) -> list[str]``) that keeps non-Latin words.

    tokens = words(text), each ASCII token longer than 3 characters replaced by its Porter stem
    (rouge-score's rule). Equal to rouge-score's default tokenizer with ``use_stemmer=True`` on ASCII.
    """

    def __init__(self, use_stemmer: bool = True) -> None:
        self.use_stemmer = use_stemmer
        self._cached = functools.lru_cache(maxsize=16384)(self._tokenize)

    def _tokenize(self, text: str) -> tuple[str, ...]:
        toks = words(text)
        if not self.use_stemmer:
            return toks
        stem = STEMMER.stem
        return tuple([stem(t) if len(t) > 3 and t.isascii() else t for t in toks])

    def tokenize(self, text: str) -> list[str]:
        toks = self._cached(text) if len(text) <= CACHE_MAX_CHARS else self._tokenize(text)
        return list(toks)


def normalize_answer(text: str) -> str:
    """Normalisation for exact match (SQuAD-style, Unicode-aware).

    NFKC, lower case, punctuation and symbols removed, the articles a/an/the dropped, whitespace
    collapsed. ``normalize_answer("The  Eiffel-Tower!") == "eiffel tower"``; Chinese characters stay.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    return " ".join(w for w in text.split() if w not in _ARTICLES)


def truncate(text: str, max_chars: int) -> str:
    """The first ``max_chars`` characters of ``text`` (no copy when it is shorter)."""
    return text if len(text) <= max_chars else text[:max_chars]
