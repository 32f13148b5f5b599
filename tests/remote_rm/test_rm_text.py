"""Tokenisation and normalisation: equal to rouge-score's tokenizer on ASCII, sensible on CJK."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.stem.porter import PorterStemmer
from rouge_score import tokenize as rs_tokenize

from remote_rm.text import CachedPorterStemmer, RougeTokenizer, has_no_space_script, normalize_answer, words


def test_words_split_latin_words_and_cjk_characters():
    assert words("The cat's 2 hats, 猫很好!") == ("the", "cat", "s", "2", "hats", "猫", "很", "好")
    assert words("Привет, мир") == ("привет", "мир")
    assert words("สวัสดี") == tuple("สวัสดี")  # Thai: no spaces between words, one token per character
    assert words("") == ()
    assert has_no_space_script("答案是猫") and not has_no_space_script("plain ascii")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable, max_size=200))
def test_rouge_tokens_equal_rouge_score_tokenizer_on_ascii(text):
    ours = RougeTokenizer(use_stemmer=True).tokenize(text)
    theirs = rs_tokenize.tokenize(text, PorterStemmer())
    assert ours == theirs


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=20))
def test_cached_stemmer_equals_nltk_porter(word):
    assert CachedPorterStemmer().stem(word) == PorterStemmer().stem(word)


def test_normalize_answer():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffel tower"
    assert normalize_answer("  An apple. ") == "apple"
    assert normalize_answer("猫。") == "猫"
    assert normalize_answer("Ｐａｒｉｓ") == "paris"  # NFKC folds full-width letters
