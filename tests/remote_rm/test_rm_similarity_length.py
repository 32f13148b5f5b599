"""Generative similarity (BLEU, ROUGE, METEOR, mix), length rewards and the repetition penalty."""

from __future__ import annotations

import math

import pytest
from nltk.stem.porter import PorterStemmer
from rouge_score.rouge_scorer import RougeScorer

from remote_rm.protocol import Label
from remote_rm.rewards.length import cosine_length, omnirl_length, repetition_penalty
from remote_rm.rewards.similarity import bleu, bleu_score, meteor, rouge, rouge_score, similarity


def ans(text: str) -> str:
    return f"<think>thinking</think><answer>{text}</answer>"


def test_exact_one_word_answer_scores_one_in_every_metric():
    for fn in (bleu, rouge, meteor, similarity):
        assert fn(ans("Paris"), Label("paris")) == 1.0
        assert fn(ans("Paris."), Label("Paris")) == 1.0
    assert meteor(ans("Paris"), Label("London")) == 0.0


def test_rouge_equals_rouge_score_on_english():
    hyp = "the quick brown foxes were jumping over lazy dogs"
    ref = "a quick brown fox jumps over the lazy dog"
    for kind in ("rouge1", "rouge2", "rougeL"):
        expected = RougeScorer([kind], use_stemmer=True).score(ref, hyp)[kind].fmeasure
        assert rouge_score(hyp, [ref], rouge_type=kind) == pytest.approx(expected, abs=1e-12)
    assert rouge(ans(hyp), Label(ref), rouge_type="rougeL") == pytest.approx(
        RougeScorer(["rougeL"], use_stemmer=True).score(ref, hyp)["rougeL"].fmeasure
    )


def test_bleu_ranks_closer_answers_higher_and_keeps_short_ones():
    ref = "a man is riding a red bicycle down the street"
    close = bleu_score("a man is riding a red bicycle on the street", [ref])
    far = bleu_score("two cats sleep on a sofa", [ref])
    assert 0 <= far < close < 1
    assert bleu_score("red bicycle", ["red bicycle"]) == pytest.approx(1.0)
    assert bleu_score("a red bicycle", ["red bicycle"]) > 0  # effective order: short answers are not zeroed


def test_chinese_scores_sensibly_not_zero():
    ref = "一只猫坐在垫子上"
    close, far = "一只猫坐在地毯上", "今天天气很好"
    for fn in (bleu, rouge, meteor, similarity):
        good, bad = fn(ans(close), Label(ref)), fn(ans(far), Label(ref))
        assert good > 0.3, fn.__name__
        assert good > bad, fn.__name__
    assert similarity(ans(ref), Label(ref)) == 1.0


def test_similarity_is_the_weighted_mean_and_multi_reference():
    hyp, ref = "the dog runs in the park", "a dog is running in a park"
    parts = (bleu(ans(hyp), Label(ref)), rouge(ans(hyp), Label(ref)), meteor(ans(hyp), Label(ref)))
    assert similarity(ans(hyp), Label(ref), w_bleu=1, w_rouge=2, w_meteor=1) == pytest.approx(
        (parts[0] + 2 * parts[1] + parts[2]) / 4
    )
    assert similarity(ans(hyp), Label(["unrelated words here", ref])) == pytest.approx(sum(parts) / 3, rel=0.2)
    with pytest.raises(ValueError):
        similarity(ans(hyp), Label(ref), w_bleu=0, w_rouge=0, w_meteor=0)


def test_hypothesis_source():
    assert rouge("no tags here", Label("no tags here")) == 0.0
    assert rouge("no tags here", Label("no tags here"), fallback_to_response=True) == 1.0
    assert rouge("no tags here", Label("no tags here"), answer_tag="") == 1.0
    assert rouge(ans(""), Label("x")) == 0.0
    assert rouge(ans("x"), Label("")) == 0.0


def test_omnirl_length_formula():
    text = "a" * 250  # no punctuation: density 0
    n, target = 250, 500
    base = n * (1 + math.sin(math.pi * n / (2 * target)))
    assert omnirl_length(text) == pytest.approx(base * 0.9 ** (n // target) * 0.5 / 500)
    long = "word. " * 200  # 1200 characters, 200 periods
    n = len(long)
    density = 200 / (n + 1e-6)
    expected = (2 * 500 + math.log(n - 500 + 1)) * 0.9 ** (n // 500) * (0.5 + 0.5 * density) / 500
    assert omnirl_length(long) == pytest.approx(expected)
    assert omnirl_length("") == 0.0
    assert omnirl_length("x" * 10**6) < 1e-6  # huge outputs are worth nothing, and it stays finite


def test_cosine_length_endpoints():
    assert cosine_length(0, True) == pytest.approx(1.0)
    assert cosine_length(1000, True) == pytest.approx(0.5)
    assert cosine_length(5000, True) == pytest.approx(0.5)
    assert cosine_length(0, False) == pytest.approx(-1.0)
    assert cosine_length(1000, False) == pytest.approx(-0.5)
    assert cosine_length(200, True) > cosine_length(800, True)


def test_repetition_penalty():
    assert repetition_penalty("one two three four five") == 0.0
    assert repetition_penalty("a b") == 0.0
    assert repetition_penalty("go " * 50) == pytest.approx(-(1 - 1 / 48))
    assert repetition_penalty("a b c a b c", ngram=3) == pytest.approx(-(1 - 3 / 4))
    assert repetition_penalty("go " * 50, max_penalty=-0.5) == pytest.approx(-0.5 * (1 - 1 / 48))


def test_stemmer_is_nltk_default_mode():
    # METEOR's stem stage must use the same stemmer as nltk's default meteor_score.
    from remote_rm.text import STEMMER

    assert STEMMER.mode == PorterStemmer().mode


def test_bleu_equals_sacrebleu_sentence_bleu():
    from sacrebleu.metrics import BLEU

    from remote_rm.text import words

    reference = BLEU(tokenize="none", effective_order=True)
    pairs = [
        ("a man rides a red bike down the road", ["a man is riding a red bicycle down the street"]),
        ("the cat", ["the cat sat on the mat", "a cat is on the mat"]),
        ("completely unrelated words", ["the cat sat on the mat"]),
        ("一只猫坐在垫子上", ["一只猫坐在地毯上"]),
    ]
    for hyp, refs in pairs:
        expected = reference.sentence_score(" ".join(words(hyp)), [" ".join(words(r)) for r in refs]).score / 100
        assert bleu_score(hyp, refs) == pytest.approx(expected, abs=1e-12)
