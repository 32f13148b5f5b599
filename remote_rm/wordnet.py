"""WordNet 3.0 for METEOR, from an installed nltk corpus or from Debian's packages, with no download.

nltk reads WordNet only from a folder ``corpora/wordnet`` under a directory on ``nltk.data.path``, it
refuses symlinks and hard links that lead outside that directory, and it needs a ``lexnames`` file
that Debian's ``wordnet-base`` does not ship. So, once per machine, :func:`prepare_wordnet` copies the
Debian files (``/usr/share/wordnet``, 36 MB) into ``<cache>/nltk_data/corpora/wordnet`` and writes the
standard WordNet 3.0 ``lexnames`` file (its 45 lexicographer files, fixed by the WordNet 3.0 release;
:func:`check_lexnames` verifies them against every synset's lex_filenum). nltk then loads it with its
own, unmodified ``WordNetCorpusReader``: METEOR is nltk's ``meteor_score`` with WordNet 3.0.

Run ``python -m remote_rm.wordnet`` to prepare the cache and print what was found (the Docker image
does this at build time).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("remote_rm.wordnet")

DEBIAN_WORDNET_DIR = "/usr/share/wordnet"
REQUIRED_FILES = (
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "index.sense",
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
)
OPTIONAL_FILES = ("cntlist.rev", "lexnames")

# WordNet 3.0's lexicographer files, in lex_filenum order (see lexnames(5WN)); the third column is the
# syntactic category: 1 noun, 2 verb, 3 adjective, 4 adverb.
LEXNAMES_30 = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_POS_NUMBER = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_DATA_POS = {"data.noun": "noun", "data.verb": "verb", "data.adj": "adj", "data.adv": "adv"}


def lexnames_text() -> str:
    """The WordNet 3.0 ``lexnames`` file: ``NN<TAB>name<TAB>category`` for each of the 45 files."""
    return "".join(f"{i:02d}\t{name}\t{_POS_NUMBER[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES_30))


def check_lexnames(wordnet_dir: str | Path) -> None:
    """Raise ValueError unless every synset's lex_filenum names a lexicographer file of its own category.

    Reads the four data files (each data line: offset, lex_filenum, ss_type, ...).
    """
    wordnet_dir = Path(wordnet_dir)
    for fname, category in _DATA_POS.items():
        with open(wordnet_dir / fname, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                if line.startswith("  "):  # licence header
                    continue
                fields = line.split(" ", 3)
                lexnum = int(fields[1])
                if not 0 <= lexnum < len(LEXNAMES_30):
                    raise ValueError(f"{wordnet_dir / fname}:{lineno}: lex_filenum {lexnum} out of range")
                if LEXNAMES_30[lexnum].split(".")[0] != category:
                    raise ValueError(
                        f"{wordnet_dir / fname}:{lineno}: lex_filenum {lexnum} ({LEXNAMES_30[lexnum]}) "
                        f"is not a {category} file"
                    )


def default_cache_dir() -> Path:
    """``$REMOTE_RM_CACHE_DIR``, else ``$XDG_CACHE_HOME/remote_rm``, else ``~/.cache/remote_rm``."""
    if os.environ.get("REMOTE_RM_CACHE_DIR"):
        return Path(os.environ["REMOTE_RM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "remote_rm"


def _fingerprint(source: Path) -> dict[str, list[int]]:
    return {
        name: [int((source / name).stat().st_size), int((source / name).stat().st_mtime)]
        for name in REQUIRED_FILES + OPTIONAL_FILES
        if (source / name).is_file()
    }


def prepare_wordnet(source_dir: str | Path = DEBIAN_WORDNET_DIR, cache_dir: str | Path | None = None) -> Path | None:
    """Make ``<cache>/nltk_data`` hold ``corpora/wordnet`` copied from ``source_dir``; return that nltk_data dir.

    Returns None when ``source_dir`` lacks a WordNet data file. Reuses a previous copy when the source
    files did not change (size and mtime), and builds a new one in a temporary sibling folder that is
    renamed into place, so concurrent starts never see a half-written copy.
    """
    source = Path(source_dir)
    if not all((source / name).is_file() for name in REQUIRED_FILES):
        return None
    nltk_data = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    nltk_data = nltk_data / "nltk_data"
    target = nltk_data / "corpora" / "wordnet"
    manifest = {"source": str(source.resolve()), "files": _fingerprint(source)}
    manifest_path = target / "remote_rm_manifest.json"
    try:
        if json.loads(manifest_path.read_text()) == manifest:
            return nltk_data
    except (OSError, ValueError):
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        for name in manifest["files"]:
            shutil.copyfile(source / name, staging / name)  # a real copy: nltk refuses links
        if not (staging / "lexnames").is_file():
            check_lexnames(staging)
            (staging / "lexnames").write_text(lexnames_text())
        (staging / "remote_rm_manifest.json").write_text(json.dumps(manifest))
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=".wordnet-old-", dir=target.parent))
            os.replace(target, old / "wordnet")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staging, target)
    except OSError:
        if not manifest_path.is_file():  # nobody else finished a copy either
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return nltk_data


@dataclass(frozen=True)
class WordNetStatus:
    """What METEOR's synonym stage has: ``available`` and the WordNet ``version`` ("3.0"), or why not."""

    available: bool
    version: str | None
    location: str | None
    reason: str

    def as_dict(self) -> dict:
        return {"available": self.available, "version": self.version, "location": self.location, "reason": self.reason}


class NoWordNet:
    """A stand-in for nltk's WordNet reader with no synonyms: METEOR then matches exact words and stems."""

    def synsets(self, lemma: str, *args, **kwargs) -> list:  # noqa: ARG002 - nltk's signature
        return []


_LOADED: tuple[object, WordNetStatus] | None = None
_SETTINGS: dict = {"enabled": True, "source_dirs": (DEBIAN_WORDNET_DIR,), "cache_dir": None}


def configure(
    enabled: bool = True, source_dirs: tuple[str, ...] = (DEBIAN_WORDNET_DIR,), cache_dir: str | None = None
) -> None:
    """Set where this process looks for WordNet (or that it must not use it) before the first load."""
    _SETTINGS.update(enabled=enabled, source_dirs=tuple(source_dirs), cache_dir=cache_dir or None)


def load_wordnet(
    source_dirs: tuple[str, ...] | None = None, cache_dir: str | Path | None = None
) -> tuple[object, WordNetStatus]:
    """Return (reader, status): nltk's WordNet reader when WordNet 3.0 is found, else :class:`NoWordNet`.

    Looks for an nltk-installed ``corpora/wordnet`` first, then prepares one from each of ``source_dirs``
    (default: what :func:`configure` set, else Debian's folder). The reader is loaded once per process
    (~3.5 s, ~250 MB). After ``configure(enabled=False)`` it is never loaded.
    """
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    if not _SETTINGS["enabled"]:
        _LOADED = (NoWordNet(), WordNetStatus(False, None, None, "disabled in the config (wordnet.enabled: false)"))
        return _LOADED
    source_dirs = tuple(source_dirs) if source_dirs is not None else _SETTINGS["source_dirs"]
    cache_dir = cache_dir if cache_dir is not None else _SETTINGS["cache_dir"]
    import nltk

    reasons = []
    candidates: list[Path | None] = [None]
    for src in source_dirs:
        try:
            prepared = prepare_wordnet(src, cache_dir)
        except (OSError, ValueError) as exc:
            reasons.append(f"{src}: could not prepare a copy ({exc})")
            continue
        if prepared is None:
            reasons.append(f"{src}: no WordNet data files (apt-get install wordnet-base wordnet-sense-index)")
        else:
            candidates.append(prepared)
    for nltk_data in candidates:
        if nltk_data is not None and str(nltk_data) not in nltk.data.path:
            nltk.data.path.insert(0, str(nltk_data))
        try:
            nltk.data.find("corpora/wordnet")
        except LookupError:
            continue
        from nltk.corpus import wordnet

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "multilingual functions are not available": not used
                wordnet.ensure_loaded()
                version = wordnet.get_version()
        except Exception as exc:  # noqa: BLE001 - a broken copy must not stop the server
            reasons.append(f"{nltk_data or 'nltk_data'}: WordNet failed to load ({exc})")
            continue
        location = str(Path(str(nltk.data.find("corpora/wordnet"))))
        if version != "3.0":
            reasons.append(f"{location}: WordNet {version}, not 3.0")
        _LOADED = (wordnet, WordNetStatus(True, version, location, "ok"))
        return _LOADED
    _LOADED = (NoWordNet(), WordNetStatus(False, None, None, "; ".join(reasons) or "no WordNet found"))
    return _LOADED


def main() -> int:
    """Prepare the WordNet copy and print its status as JSON; exit 0 when WordNet is available."""
    logging.basicConfig(level=logging.INFO)
    _, status = load_wordnet()
    print(json.dumps(status.as_dict()))
    return 0 if status.available else 1


if __name__ == "__main__":
    raise SystemExit(main())
