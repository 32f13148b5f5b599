"""The user docs (README.md, docs/*.md) and the ``--help`` texts speak of the project, not of how it was made:
no issue numbers, no sessions or waves of work, no development tools' output, no one copying figures, no links
outside the repository."""

from __future__ import annotations

import re

import pytest

from .helpers import REPO, SCRIPTS, USER_DOCS, capture, entry_point

# (pattern, flags, what it catches)
HISTORY = [
    (r"\bissues? ?#?\d+", re.I, "an issue number"),
    (r"(?<![\w/&])#\d+\b", 0, "an issue or pull-request reference"),
    (r"\bthe issue\b", re.I, "the issue that asked for something"),
    (r"\b(this|last|same|previous|earlier|next|another) session\b", re.I, "a work session"),
    (r"\bwave \d", re.I, "a wave of work"),
    (r"\bthe lead\b", re.I, "who copies figures where"),
    (r"\blent\b", re.I, "a machine lent to the work"),
    (r"can_start_another|budget_left_s", 0, "a development tool's status line"),
    (r"\.\./shared/|\b(ENVIRONMENT|DESIGN)\.md\b", 0, "a page outside the repository"),
]


def history_in(text: str) -> list[str]:
    """One line per match: line number, what it is, the line."""
    found = []
    for pattern, flags, what in HISTORY:
        for match in re.finditer(pattern, text, flags):
            number = text.count("\n", 0, match.start()) + 1
            found.append(f"{number}: {what}: {text.splitlines()[number - 1].strip()[:120]}")
    return found


@pytest.mark.parametrize("page", USER_DOCS, ids=lambda p: p.name)
def test_user_docs_speak_of_the_project_not_of_its_making(page):
    assert history_in(page.read_text()) == []


@pytest.mark.parametrize("page", USER_DOCS, ids=lambda p: p.name)
def test_links_stay_inside_the_repository(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"(https?|mailto):|#", target):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(REPO) and path.exists(), f"{page.name}: {target}"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_texts_speak_of_the_project(script):
    asks = [["--help"]] + ([["--help", "all"], ["--help", "openrlhf"]] if script == "openrlhf-train" else [])
    for argv in asks:
        code, out, _ = capture(lambda argv=argv: entry_point(script)(argv))
        assert code == 0 and history_in(out) == [], (script, argv, history_in(out))


def test_the_patterns_catch_what_they_are_for():
    old = [
        "Measured facts about the build machines: `../shared/ENVIRONMENT.md`.",
        "| target (issue 12) | measured | |",
        "`--rollout.max_tokens_per_gpu`) came with issue #12; sampled evaluation",
        "- The ratios are what to compare (the lead copies them into docs/benchmarks.md); absolute numbers",
        "What did not work (same session, 300 SFT steps each):",
        "no GPU machine was lent to this work (`status`: can_start_another false).",
        "within 0.02 of the synchronous run's (the issue asks 0.1).",
    ]
    for line in old:
        assert history_in(line), line
    fine = "Linux's scheduler shares the cores between autogroups; docs/environment.md; the R1 story; step 12"
    assert history_in(fine) == []
