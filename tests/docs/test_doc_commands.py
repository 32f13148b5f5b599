"""Every ``openrlhf-*`` command the user docs (README.md, docs/*.md) and the ``--help`` texts show exists and
parses: config-driven commands load their config (``--print-config``; ``--plan`` where they ask for a plan),
the others' flags pass their argparse parser. Nothing is trained or started."""

from __future__ import annotations

import shlex

import pytest

from .helpers import REPO, SCRIPTS, USER_DOCS, check_parses, doc_commands, help_commands, statements


def _doc_cases() -> list[tuple[str, str, list[str]]]:
    return [(path.name, script, args) for path in USER_DOCS for script, args in doc_commands(path)]


@pytest.mark.parametrize(
    ("page", "script", "args"), _doc_cases(), ids=[f"{p}: {s} {shlex.join(a)}"[:90] for p, s, a in _doc_cases()]
)
def test_doc_command_parses(page, script, args):
    check_parses(script, args)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_commands_parse(script):
    commands = help_commands(script)
    assert commands, f"{script} --help shows no example command"
    for name, args in commands:
        check_parses(name, args)


def test_every_console_script_is_shown_in_the_docs():
    shown = {script for path in USER_DOCS for script, _ in doc_commands(path)}
    assert shown == set(SCRIPTS), sorted(set(SCRIPTS) - shown)


def test_the_reader_handles_continuations_heredocs_and_chains():
    block = "a && openrlhf-tiny --kind lm \\\n  --out x  # built\ncat > f <<'EOF'\n{\"k\": 1}\nEOF\nray job submit -- openrlhf-data synth --task sums --out d\n"
    found = statements(block)
    assert found[:2] == ["a ", " openrlhf-tiny --kind lm    --out x  # built"]
    assert found[2] == "cat > f <<'EOF'\n{\"k\": 1}\nEOF"
    assert (REPO / "configs" / "grpo.yaml").is_file()
