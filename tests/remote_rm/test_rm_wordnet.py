"""METEOR really uses WordNet 3.0 (from Debian's files, no download) and equals nltk's meteor_score."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from nltk.stem.porter import PorterStemmer

from remote_rm.rewards import similarity
from remote_rm.text import words
from remote_rm.wordnet import DEBIAN_WORDNET_DIR, LEXNAMES_30, NoWordNet, check_lexnames, lexnames_text, prepare_wordnet

needs_debian_wordnet = pytest.mark.skipif(
    not Path(DEBIAN_WORDNET_DIR, "data.noun").is_file(),
    reason="Debian WordNet not installed (apt-get install wordnet-base wordnet-sense-index; scripts/install.sh does)",
)


def glosses(n: int, seed: int = 0) -> list[str]:
    """Real English sentences: definitions from WordNet's own noun data file."""
    out = []
    with open(Path(DEBIAN_WORDNET_DIR, "data.noun"), encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  ") or "|" not in line:
                continue
            gloss = line.split("|", 1)[1].split(";")[0].strip()
            if 8 <= len(gloss.split()) <= 30:
                out.append(gloss)
    random.Random(seed).shuffle(out)
    return out[:n]


def paraphrase(sentence: str, wordnet, rng: random.Random) -> str:
    """Swap some words for WordNet synonyms, drop one, so exact, stem and synonym matches all occur."""
    toks = sentence.split()
    for i, tok in enumerate(toks):
        if rng.random() < 0.4:
            names = [
                lem.name() for syn in wordnet.synsets(tok.lower()) for lem in syn.lemmas() if "_" not in lem.name()
            ]
            names = [n for n in names if n.lower() != tok.lower()]
            if names:
                toks[i] = rng.choice(sorted(names))
    if len(toks) > 4:
        del toks[rng.randrange(len(toks))]
    return " ".join(toks)


def test_lexnames_file_is_wordnet_30():
    lines = lexnames_text().splitlines()
    assert len(lines) == 45 == len(LEXNAMES_30)
    assert lines[0] == "00\tadj.all\t3" and lines[5] == "05\tnoun.animal\t1" and lines[44] == "44\tadj.ppl\t3"


@needs_debian_wordnet
def test_debian_files_match_the_lexnames_and_prepare_copies(tmp_path):
    check_lexnames(DEBIAN_WORDNET_DIR)  # every synset's lex_filenum names a file of its own category
    root = prepare_wordnet(DEBIAN_WORDNET_DIR, tmp_path)
    folder = root / "corpora" / "wordnet"
    assert (folder / "lexnames").read_text() == lexnames_text()
    assert not (folder / "data.noun").is_symlink() and (folder / "data.noun").stat().st_nlink == 1
    assert prepare_wordnet(DEBIAN_WORDNET_DIR, tmp_path) == root  # reused, not copied again
    assert prepare_wordnet(tmp_path / "nothing-here", tmp_path) is None


@needs_debian_wordnet
def test_meteor_equals_nltk_meteor_with_wordnet_30(remote_rm_cache):
    from nltk.corpus import wordnet as nltk_wordnet
    from nltk.translate.meteor_score import meteor_score

    source = similarity.synonym_source(True)
    reader = source.reader
    assert reader.get_version() == "3.0"
    assert reader.synset("dog.n.01").lexname() == "noun.animal"
    assert {"big", "large"} <= {lem.name() for lem in reader.synset("large.a.01").lemmas()}

    rng = random.Random(1)
    refs = glosses(150)
    gained = 0
    for ref in refs:
        hyp = paraphrase(ref, reader, rng)
        ref_toks, hyp_toks = list(words(ref)), list(words(hyp))
        expected = meteor_score([ref_toks], hyp_toks, wordnet=nltk_wordnet, stemmer=PorterStemmer())
        ours = similarity.meteor_tokens(hyp_toks, [ref_toks])
        assert abs(ours - expected) < 1e-6, (ref, hyp)
        assert abs(similarity.meteor_text(hyp, [ref]) - expected) < 1e-6
        without = meteor_score([ref_toks], hyp_toks, wordnet=NoWordNet(), stemmer=PorterStemmer())
        gained += ours > without + 1e-9
    assert gained >= 30, f"WordNet synonyms raised METEOR on only {gained} of {len(refs)} paraphrases"


def test_meteor_without_wordnet_matches_exact_and_stems():
    from nltk.translate.meteor_score import meteor_score

    hyp, ref = "the dogs were running quickly".split(), "the dog runs quick".split()
    expected = meteor_score([ref], hyp, wordnet=NoWordNet(), stemmer=PorterStemmer())
    assert expected > 0.5
    assert similarity.meteor_tokens(hyp, [ref], use_wordnet=False) == pytest.approx(expected, abs=1e-12)


def test_no_wordnet_found_is_reported(tmp_path):
    empty = str(tmp_path / "empty")
    code = f"import json; from remote_rm.wordnet import load_wordnet; print(json.dumps(load_wordnet(({empty!r},))[1].as_dict()))"
    env = dict(os.environ, REMOTE_RM_CACHE_DIR=str(tmp_path / "cache"), HOME=str(tmp_path), NLTK_DATA="")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    status = json.loads(out.stdout.strip().splitlines()[-1])
    if status["available"]:  # an nltk-downloaded WordNet elsewhere on this machine was found instead
        assert status["version"] == "3.0"
    else:
        assert "no WordNet data files" in status["reason"] and "apt-get install" in status["reason"]
