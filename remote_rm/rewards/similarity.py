"""Generative similarity rewards (OmniRL's Rb, Rr, Rm): BLEU, ROUGE and METEOR, alone or mixed.

- BLEU: sacrebleu's sentence BLEU with effective order (n-gram orders beyond the sentence length are
  dropped, so short answers are not zeroed) and exponential smoothing, over our tokens.
- ROUGE: rouge-score's ``RougeScorer`` F-measure with :class:`remote_rm.text.RougeTokenizer`.
- METEOR: nltk's ``meteor_score`` (exact, Porter-stem and WordNet 3.0 synonym matching) over our tokens.

Tokens are :func:`remote_rm.text.words`: Chinese/Japanese/Thai text is split into characters, so it
scores sensibly instead of 0. An answer equal to the reference after
:func:`_exact` (same words; case, punctuation and articles ignored) scores 1 in every metric (METEOR's fragmentation penalty
would otherwise give a one-word exact answer 0.5).

The hypothesis is the answer (last ``<answer>`` content, or the whole response when ``answer_tag`` is
empty or, with ``fallback_to_response``, when there is no answer tag). A list solution is several
references: BLEU uses them all, ROUGE and METEOR take the best.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from remote_rm.rewards.extract import tagged
from remote_rm.text import STEMMER, RougeTokenizer, words
from remote_rm.wordnet import NoWordNet, load_wordnet

_ARTICLES = frozenset({"a", "an", "the"})


class _Lemma:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def name(self) -> str:
        return self._name


class _SynonymSet:
    """All lemmas of all of a word's synsets, as one synset-like object."""

    __slots__ = ("_lemmas",)

    def __init__(self, names: tuple[str, ...]) -> None:
        self._lemmas = tuple(_Lemma(n) for n in names)

    def lemmas(self) -> tuple[_Lemma, ...]:
        return self._lemmas


class CachedSynsets:
    """A ``wordnet=`` object for nltk's METEOR that looks each word up in WordNet once.

    nltk's synonym stage only takes the union of the lemma names of ``wordnet.synsets(word)``; this
    returns that union, computed once per word, as a single synset-like object, so the matches (and
    the score) are exactly those of the real reader.
    """

    def __init__(self, reader: object) -> None:
        self.reader = reader
        self._cached = functools.lru_cache(maxsize=200_000)(self._union)

    def _union(self, lemma: str) -> list[_SynonymSet]:
        names = dict.fromkeys(lem.name() for syn in self.reader.synsets(lemma) for lem in syn.lemmas())
        return [_SynonymSet(tuple(names))] if names else []

    def synsets(self, lemma: str, *args, **kwargs) -> list:
        if args or kwargs or len(lemma) > 64:
            return self.reader.synsets(lemma, *args, **kwargs)
        return self._cached(lemma)


_SYNONYMS: dict[bool, object] = {}


def synonym_source(use_wordnet: bool = True) -> object:
    """The ``wordnet=`` object for nltk's METEOR: cached WordNet 3.0 when available, else :class:`NoWordNet`."""
    if use_wordnet not in _SYNONYMS:
        reader = load_wordnet()[0] if use_wordnet else NoWordNet()
        _SYNONYMS[use_wordnet] = CachedSynsets(reader) if use_wordnet else reader
    return _SYNONYMS[use_wordnet]


def _references(label: object) -> list[str]:
    solution = getattr(label, "solution", label)
    if isinstance(solution, (list, tuple)):
        return [str(s) for s in solution if str(s).strip()]
    return [str(solution)] if str(solution).strip() else []


def _hypothesis(response: str, answer_tag: str, fallback_to_response: bool) -> str | None:
    if not answer_tag:
        return response
    answer = tagged(response, answer_tag)
    if answer is None:
        return response if fallback_to_response else None
    return answer


def _content_words(text: str) -> tuple[str, ...]:
    return tuple(w for w in words(text) if w not in _ARTICLES)


def _exact(hypothesis: str, references: Sequence[str]) -> bool:
    """Equal after normalisation: the same words (case, punctuation and the articles a/an/the ignored)."""
    hyp = _content_words(hypothesis)
    return bool(hyp) and any(hyp == _content_words(ref) for ref in references)


@functools.lru_cache(maxsize=4096)
def _bleu_with_references(references: tuple[str, ...], max_order: int, smooth_method: str):
    """sacrebleu's BLEU with the references' n-grams computed once (a GRPO group shares its reference)."""
    from sacrebleu.metrics import BLEU

    return BLEU(
        tokenize="none",
        effective_order=True,
        max_ngram_order=max_order,
        smooth_method=smooth_method,
        references=[[ref] for ref in references],
    )


def bleu_score(hypothesis: str, references: Sequence[str], max_order: int = 4, smooth_method: str = "exp") -> float:
    """Sentence BLEU in [0, 1]: BP * exp(sum_n w_n log p_n) over the effective orders n <= ``max_order``.

    p_n are clipped n-gram precisions (smoothed), BP = min(1, exp(1 - r/c)), tokens from ``words``.
    Equal to sacrebleu's ``sentence_score`` (computed as the one-segment corpus score, so the
    references' n-grams are cached).
    """
    hyp = " ".join(words(hypothesis))
    refs = tuple(" ".join(words(r)) for r in references)
    if not hyp or not any(refs):
        return 0.0
    metric = _bleu_with_references(refs, max_order, smooth_method)
    return metric.corpus_score([hyp], None).score / 100.0


@functools.lru_cache(maxsize=32)
def _rouge_scorer(rouge_type: str, use_stemmer: bool):
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer([rouge_type], tokenizer=RougeTokenizer(use_stemmer))


def rouge_score(
    hypothesis: str, references: Sequence[str], rouge_type: str = "rouge1", use_stemmer: bool = True
) -> float:
    """ROUGE F-measure in [0, 1] (rouge-score), best over the references.

    ROUGE-N: F of clipped n-gram overlap; ROUGE-L: F of the longest common subsequence,
    F = 2PR / (P + R).
    """
    if rouge_type not in ("rouge1", "rouge2", "rouge3", "rouge4", "rougeL", "rougeLsum"):
        raise ValueError(f"rouge: unknown rouge_type {rouge_type!r}")
    scorer = _rouge_scorer(rouge_type, use_stemmer)
    return max((scorer.score(ref, hypothesis)[rouge_type].fmeasure for ref in references), default=0.0)


def meteor_tokens(
    hypothesis: Sequence[str],
    references: Sequence[Sequence[str]],
    use_wordnet: bool = True,
    alpha: float = 0.9,
    beta: float = 3.0,
    gamma: float = 0.5,
) -> float:
    """nltk's METEOR on token lists (best over the references), with WordNet 3.0 synonyms when available.

    F_mean = P R / (alpha P + (1 - alpha) R) over unigram matches (exact, then Porter stem, then
    WordNet synonym), penalty = gamma (chunks / matches)^beta, METEOR = F_mean (1 - penalty).
    """
    from nltk.translate.meteor_score import meteor_score

    if not hypothesis or not any(references):
        return 0.0
    return meteor_score(
        [list(r) for r in references if r],
        list(hypothesis),
        stemmer=STEMMER,
        wordnet=synonym_source(use_wordnet),
        alpha=alpha,
        beta=beta,
        gamma=gamma,
    )


def meteor_text(hypothesis: str, references: Sequence[str], use_wordnet: bool = True, **params: float) -> float:
    """METEOR of texts: :func:`meteor_tokens` on ``words(hypothesis)`` and ``words(reference)``."""
    return meteor_tokens(words(hypothesis), [words(r) for r in references], use_wordnet, **params)


def _score(metric, response: str, label: object, answer_tag: str, fallback_to_response: bool, **params) -> float:
    references = _references(label)
    hypothesis = _hypothesis(response, answer_tag, fallback_to_response)
    if hypothesis is None or not references:
        return 0.0
    if _exact(hypothesis, references):
        return 1.0
    return float(metric(hypothesis, references, **params))


def bleu(
    response: str,
    label: object,
    max_order: int = 4,
    smooth_method: str = "exp",
    answer_tag: str = "answer",
    fallback_to_response: bool = False,
) -> float:
    """Rb: :func:`bleu_score` of the answer against the solution (1 for a normalised exact match)."""
    return _score(
        bleu_score, response, label, answer_tag, fallback_to_response, max_order=max_order, smooth_method=smooth_method
    )


def rouge(
    response: str,
    label: object,
    rouge_type: str = "rouge1",
    use_stemmer: bool = True,
    answer_tag: str = "answer",
    fallback_to_response: bool = False,
) -> float:
    """Rr: :func:`rouge_score` of the answer against the solution (1 for a normalised exact match)."""
    return _score(
        rouge_score, response, label, answer_tag, fallback_to_response, rouge_type=rouge_type, use_stemmer=use_stemmer
    )


def meteor(
    response: str,
    label: object,
    use_wordnet: bool = True,
    alpha: float = 0.9,
    beta: float = 3.0,
    gamma: float = 0.5,
    answer_tag: str = "answer",
    fallback_to_response: bool = False,
) -> float:
    """Rm: :func:`meteor_text` of the answer against the solution (1 for a normalised exact match)."""
    return _score(
        meteor_text,
        response,
        label,
        answer_tag,
        fallback_to_response,
        use_wordnet=use_wordnet,
        alpha=alpha,
        beta=beta,
        gamma=gamma,
    )


def similarity(
    response: str,
    label: object,
    w_bleu: float = 1.0,
    w_rouge: float = 1.0,
    w_meteor: float = 1.0,
    rouge_type: str = "rouge1",
    max_order: int = 4,
    use_wordnet: bool = True,
    answer_tag: str = "answer",
    fallback_to_response: bool = False,
) -> float:
    """Weighted mix: (w_b Rb + w_r Rr + w_m Rm) / (w_b + w_r + w_m); a zero weight skips its metric."""
    total = w_bleu + w_rouge + w_meteor
    if total <= 0:
        raise ValueError("similarity: the weights w_bleu, w_rouge, w_meteor must sum to more than 0")
    references = _references(label)
    hypothesis = _hypothesis(response, answer_tag, fallback_to_response)
    if hypothesis is None or not references:
        return 0.0
    if _exact(hypothesis, references):
        return 1.0
    value = 0.0
    if w_bleu:
        value += w_bleu * bleu_score(hypothesis, references, max_order=max_order)
    if w_rouge:
        value += w_rouge * rouge_score(hypothesis, references, rouge_type=rouge_type)
    if w_meteor:
        value += w_meteor * meteor_text(hypothesis, references, use_wordnet=use_wordnet)
    return value / total
