"""What the README lists and quotes comes from the same place as the code and the other pages: its lists of
entry points and synthetic tasks, its speed figure against TRL, the reward server's flag table."""

from __future__ import annotations

import re

from .helpers import REPO, SCRIPTS, USER_DOCS, argparse_parser

README = (REPO / "README.md").read_text()
FLAT_README = " ".join(README.split())


def test_readme_lists_every_entry_point_module():
    line = next(line for line in README.splitlines() if line.strip().startswith("cli/"))
    listed = set(line.split(":", 1)[1].replace(",", " ").split())
    modules = {target.split(":")[0].rsplit(".", 1)[-1] for target in SCRIPTS.values() if target.startswith("openrlhf.")}
    assert listed == modules, (listed, modules)


def test_readme_lists_every_synthetic_task():
    synth = argparse_parser("openrlhf-data")._subparsers._group_actions[0].choices["synth"]
    tasks = next(a for a in synth._actions if a.dest == "task").choices
    quoted = re.search(r"`synth` writes the demos' generated tasks \(([^)]*)\)", FLAT_README).group(1)
    assert re.findall(r"`(\w+)`", quoted) == list(tasks)


def _bold_figure(cells: list[str]) -> str:
    return re.search(r"\*\*([\d.]+)\*\*", cells[2]).group(1)


def test_readme_quotes_the_latest_trl_figures_of_the_benchmarks_page():
    """docs/benchmarks.md's targets table gives the latest run first; the README quotes its small-shape step and
    whole-process ratios."""
    lines = (REPO / "docs" / "benchmarks.md").read_text().splitlines()
    rows = [line.split("|") for line in lines if line.startswith("|")]
    header = next(row for row in rows if row[1].strip() == "target")
    assert header[2].strip().startswith("latest run")
    step = _bold_figure(next(row for row in rows if row[1].strip() == "step time <= 1.0x TRL, small 2x4x32"))
    whole = _bold_figure(next(row for row in rows if row[1].strip().startswith("whole process <= 1.5x TRL")))
    assert f"vs TRL on this machine {step}x step time and {whole}x whole process at the small shape" in FLAT_README


def test_reward_service_flag_table_has_every_flag():
    table = (REPO / "docs" / "reward_service.md").read_text().split("| flag | meaning |", 1)[1].split("\n\n", 1)[0]
    for action in argparse_parser("openrlhf-reward-server")._actions:
        for flag in action.option_strings:
            assert f"`{flag}" in table, flag


def test_every_config_key_the_docs_name_exists():
    """A dotted name that starts with a config section (`ds.bf16`, `--train.colocate_all`) is a key or section
    here, or one of OpenRLHF's names this project accepts or refuses by name."""
    from openrlhf import openrlhf_flags as oa
    from openrlhf.config import Config
    from openrlhf.config_help import all_keys, sections

    known = {*all_keys(), *sections(), *oa.ALIASES, *oa.REFUSED}
    for page in USER_DOCS:
        text = page.read_text()
        names = re.findall(r"(?<![\w./-])--?([a-z_]+(?:\.[a-z_0-9]+)+)\b", text)
        names += re.findall(r"`([a-z_]+(?:\.[a-z_0-9]+)+)`", text)
        for name in names:
            is_file = name.rsplit(".", 1)[-1] in ("txt", "json", "jsonl", "yaml", "md", "py", "png")
            if name.split(".")[0] in Config.model_fields and not is_file:
                assert name in known, f"{page.name}: {name}"
