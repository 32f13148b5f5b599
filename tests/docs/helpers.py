"""The command lines the user docs and ``--help`` texts show, read as a shell would, and run in this process.

A code block's lines are joined at ``\\`` line ends and split at ``&&`` / ``;``; a heredoc (``<<'EOF'`` ...
``EOF``) stays with its command. A command is a list of shlex tokens (comments dropped); ``openrlhf-*`` commands
run through their console script's ``main`` in this process (no new interpreter, no second import of torch).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
CONFIG_DRIVEN = ("openrlhf-train", "openrlhf-sft", "openrlhf-eval")
USER_DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SHELL_FENCES = ("bash", "sh", "shell", "console", "")


def entry_point(name: str) -> Callable[[list[str]], int]:
    module, func = SCRIPTS[name].split(":")
    return getattr(importlib.import_module(module), func)


def argparse_parser(name: str):
    """The argparse parser of an argparse-based console script (none for the config-driven ones)."""
    from openrlhf.cli import data, models, serve, tiny
    from remote_rm import cli as rm_cli

    return {
        "openrlhf-data": data.build_parser,
        "openrlhf-tiny": tiny._parser,
        "openrlhf-models": models._parser,
        "openrlhf-serve": serve.build_parser,
        "openrlhf-reward-server": rm_cli.build_parser,
    }[name]()


def shell_blocks(markdown: str) -> list[str]:
    """The shell code of a page: fenced blocks (bash, sh, console or no language) and 4-space indented lines
    that start with a command name."""
    blocks = [body for lang, body in FENCE.findall(markdown) if lang in SHELL_FENCES]
    outside = FENCE.sub("", markdown)
    blocks += [line[4:] + "\n" for line in outside.splitlines() if re.match(r"    (openrlhf-|python )", line)]
    return blocks


def statements(block: str) -> list[str]:
    """A block's shell statements: continuation lines joined, heredocs kept with their command, lines split at
    ``&&`` and ``;`` outside quotes (``until ...; do ...; done`` loops stay whole)."""
    lines = block.replace("\\\n", " ").splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        heredoc = re.search(r"<<-?\s*'?(\w+)'?", line)
        if heredoc:
            body = [line]
            while i < len(lines) and lines[i].strip() != heredoc.group(1):
                body.append(lines[i])
                i += 1
            body.append(lines[i] if i < len(lines) else heredoc.group(1))
            i += 1
            out.append("\n".join(body))
        elif re.match(r"\s*(until|while|for|if)\b", line):
            out.append(line)
        else:
            out += [part for part in _split_unquoted(line) if part.strip()]
    return out


def _split_unquoted(line: str) -> list[str]:
    parts, current, quote = [], "", ""
    i = 0
    while i < len(line):
        char = line[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif line.startswith("&&", i) or char == ";":
            parts.append(current)
            current = ""
            i += 2 if char == "&" else 1
            continue
        current += char
        i += 1
    return [*parts, current]


def openrlhf_command(statement: str) -> tuple[str, list[str], bool] | None:
    """(console script, its arguments, sent to the background) of a statement that runs an ``openrlhf-*``
    command (after environment assignments, or after ``ray job submit ... --``); None for any other statement."""
    if "\n" in statement:
        return None
    try:
        tokens = shlex.split(statement, comments=True)
    except ValueError:
        return None
    background = bool(tokens) and tokens[-1] == "&"
    tokens = tokens[:-1] if background else tokens
    for i, token in enumerate(tokens):
        if token in SCRIPTS:
            before = tokens[:i]
            if all("=" in t for t in before) or (before and before[-1] == "--" and "ray" in before):
                return token, tokens[i + 1 :], background
            return None
    return None


def doc_commands(path: Path) -> list[tuple[str, list[str]]]:
    """Every ``openrlhf-*`` command in a page's shell code, in order."""
    found = []
    for block in shell_blocks(path.read_text()):
        for statement in statements(block):
            command = openrlhf_command(statement)
            if command is not None:
                found.append(command[:2])
    return found


def capture(func: Callable[[], int]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``func()``; argparse's SystemExit becomes the exit code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = func()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def help_text(script: str) -> str:
    code, out, _ = capture(lambda: entry_point(script)(["--help"]))
    assert code == 0, script
    return out


def help_commands(script: str) -> list[tuple[str, list[str]]]:
    """The example commands a script's ``--help`` shows: lines (after the usage lines) that run a console
    script, with their ``\\`` continuation lines."""
    lines = help_text(script).split("\n\n", 1)[-1]
    found = []
    for statement in statements(lines):
        command = openrlhf_command(statement.strip())
        if command is not None:
            found.append(command[:2])
    return found


def check_parses(script: str, args: list[str]) -> None:
    """Prove a documented command parses, without running it: a config-driven command with ``--print-config``
    (and, when it asks for one, its ``--plan``: exit 0 or 1, never a usage error); an argparse command through
    its parser (``openrlhf-eval --from-outputs`` too)."""
    where = f"{script} {shlex.join(args)}"
    if script == "openrlhf-eval" and any(a.split("=")[0] == "--from-outputs" for a in args):
        from openrlhf.cli.eval import from_outputs_parser

        code, _, err = capture(lambda: from_outputs_parser().parse_args(args) and 0)
        assert code == 0, f"{where}: {err}"
    elif script in CONFIG_DRIVEN:
        code, out, err = capture(lambda: entry_point(script)([*args, "--print-config"]))
        assert code == 0 and out.startswith("actor:"), f"{where}: exit {code}: {err}"
        if "--plan" in args:
            code, out, err = capture(lambda: entry_point(script)(args))
            assert code in (0, 1) and "error" not in err, f"{where}: exit {code}: {err}"
    else:
        parser = argparse_parser(script)
        code, _, err = capture(lambda: parser.parse_args(args) and 0)
        assert code == 0, f"{where}: {err}"
