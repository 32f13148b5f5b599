"""``--help`` for the config-driven commands, generated from the config tree (openrlhf/config.py).

``--help`` is a one-screen summary: the sections the command reads, each with one line, its most used keys,
and where the rest is. ``--help all`` prints every key of those sections with its type, default and description
(the pydantic ``Field`` descriptions), with OpenRLHF v0.11's names for a key (openrlhf/openrlhf_flags/).
``--help SECTION`` prints one section (``algo``, ``algo.kl``) or one key; ``--help openrlhf`` lists OpenRLHF's
flags, what each sets here and those not supported. :func:`did_you_mean` suggests keys for a misspelt one,
searching every section and OpenRLHF's names.

``python -m openrlhf.config_help --migration-table`` prints the flag tables of
docs/migrating_from_openrlhf.md.
"""

from __future__ import annotations

import difflib
import sys
import textwrap
from functools import cache
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from openrlhf import openrlhf_flags as oa
from openrlhf.config import Config, ConfigError, Section

WIDTH = 100
INDENT = "      "

VALUES_NOTE = (
    "Values are parsed by the key's type: BOOL takes true/false/1/0/yes/no (a bare --flag is true); LIST "
    "takes [a, b], a,b or several values after the flag; a pair takes two values after the flag "
    "(--algo.dynamic_filter.score_range 0 1). OpenRLHF v0.11's flag names work too: 'OpenRLHF:' after a key "
    "names them; --help openrlhf lists every OpenRLHF flag with what it sets here, and those not supported."
)


# One line per top-level section, for the summary (a test keeps it in step with the config tree).
SECTION_SUMMARY = {
    "actor": "the policy: checkpoint, dtype, LoRA, ranks per node",
    "ref": "the reference model for the KL term (default: the actor's checkpoint)",
    "data": "prompt and eval files, their format and keys, images, chat template and prompt length",
    "rollout": "sampling: backend (HF or vLLM), samples per prompt, temperature, new tokens, weight sync",
    "vllm": "rollout engines: how many, tensor parallel size, GPU memory, sleep while training",
    "algo": "GRPO / Reinforce++ / StableReinforce: advantages, KL, clipping, filters, loss aggregation",
    "reward": "reward servers (URLs), a reward function file, or a local server; retries and timeouts",
    "train": "steps and batch sizes, learning rate, output folder, colocation, async RL, worker mode",
    "ds": "DeepSpeed: ZeRO stage, offload, gradient checkpointing, bf16, packing, sleep while generating",
    "ckpt": "checkpoints: interval, how many kept, resume (load_enable), best model by an eval metric",
    "eval": "how held-out prompts are answered: temperature and samples per prompt",
    "logger": "metrics.jsonl, TensorBoard, Weights & Biases, progress bar",
    "sft": "supervised fine-tuning (openrlhf-sft, the demos' warm start): epochs, learning rate, batches",
    "demo": "the embedded demos: task, model, generated data sizes",
    "plan": "the placement and memory planner (--plan): model size, cluster shape, enforcement",
}

# The sections a command reads (its --help lists only these; --help SECTION shows any), and its most used keys.
COMMAND_SECTIONS = {
    "openrlhf-sft": ("actor", "data", "train", "ds", "sft", "logger"),
    "openrlhf-eval": ("actor", "data", "rollout", "vllm", "eval", "train"),
}
COMMON_KEYS = {
    "openrlhf-train": (
        "actor.model_name_or_path", "data.train_paths", "data.eval_paths", "reward.remote_url", "algo.name",
        "rollout.n_samples_per_prompt", "train.rollout_batch_size", "train.max_steps", "train.output_dir",
        "ckpt.load_enable",
    ),
    "openrlhf-sft": (
        "actor.model_name_or_path", "data.train_paths", "sft.epochs", "sft.learning_rate", "sft.batch_size",
        "sft.output_dir", "actor.num_gpus_per_node",
    ),
    "openrlhf-eval": (
        "actor.model_name_or_path", "data.eval_paths", "data.image_roots", "eval.temperature",
        "eval.n_samples_per_prompt", "rollout.max_new_tokens", "train.output_dir",
    ),
}  # fmt: skip


def command_sections(command: str) -> tuple[str, ...]:
    """The top-level config sections ``command`` reads (every section for openrlhf-train)."""
    return COMMAND_SECTIONS.get(command, tuple(Config.model_fields))


def type_name(annotation: Any) -> str:
    """A short name of a config key's type: INT, BOOL, LIST[STR], {a,b}, FLOAT FLOAT."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        return "{" + ",".join(str(choice) for choice in args) + "}"
    if origin is list:
        return f"LIST[{type_name(args[0])}]" if args else "LIST"
    if origin is tuple:
        return " ".join(type_name(a) for a in args if a is not Ellipsis)
    if origin in (Union, UnionType):
        return " | ".join(type_name(a) for a in args)
    if annotation is type(None):
        return "NULL"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "SECTION"
    names = {bool: "BOOL", int: "INT", float: "FLOAT", str: "STR"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)).upper())


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _walk(model: type[BaseModel], prefix: str = "") -> list[tuple[str, type[BaseModel]]]:
    """(dotted section name, model) for ``model`` and every section below it, depth first."""
    out = [(prefix, model)]
    for name, field in model.model_fields.items():
        if _is_section(field.annotation):
            out += _walk(field.annotation, f"{prefix}.{name}" if prefix else name)
    return out


@cache
def sections() -> dict[str, type[BaseModel]]:
    """Every config section by dotted name (``actor``, ``actor.lora``, ``algo.kl``, ...)."""
    return {name: model for name, model in _walk(Config) if name}


@cache
def all_keys() -> tuple[str, ...]:
    """Every leaf key of the config tree, dotted."""
    keys = []
    for name, model in sections().items():
        keys += [f"{name}.{key}" for key, field in model.model_fields.items() if not _is_section(field.annotation)]
    return tuple(keys)


@cache
def _aliases_by_target() -> dict[str, list[oa.Alias]]:
    out: dict[str, list[oa.Alias]] = {}
    for alias in oa.ALIAS_LIST:
        for target in alias.targets:
            out.setdefault(target, []).append(alias)
    return out


def suggestions(key: str, limit: int = 4, extra: tuple[str, ...] = ()) -> list[str]:
    """Keys close to ``key`` in any section, this project's and OpenRLHF's names (difflib), and ``extra``."""
    key = key.lstrip("-")
    names = [*extra, *all_keys(), *oa.ALIASES]
    found = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
    by_leaf: dict[str, list[str]] = {}
    for name in names:
        by_leaf.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    for leaf in difflib.get_close_matches(key.rsplit(".", 1)[-1], list(by_leaf), n=2, cutoff=0.85):
        found += by_leaf[leaf]
    unique = [name for i, name in enumerate(found) if name != key and name not in found[:i]]
    return unique[:limit]


def did_you_mean(key: str, extra: tuple[str, ...] = (), dashes: str = "--") -> str:
    """`` (did you mean --a.b?)`` for a misspelt key, or the empty string."""
    close = suggestions(key, extra=extra)
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"{dashes}{name}" for name in close) + "?)"


def help_request(argv: list[str]) -> str | None:
    """None when ``argv`` asks for no help; else the section asked for ('' for all)."""
    for i, arg in enumerate(argv):
        if arg in ("-h", "--help"):
            following = argv[i + 1] if i + 1 < len(argv) else ""
            return following if following and not following.startswith("-") else ""
        if arg.startswith("--help="):
            return arg.split("=", 1)[1]
    return None


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '""' if not value or value != value.strip() else value
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return repr(value)


def _bounds(field: Any) -> str:
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    parts = []
    for item in field.metadata:
        for attr, sign in signs.items():
            bound = getattr(item, attr, None)
            if bound is not None:
                parts.append(f"{sign} {bound}")
    return ", ".join(parts)


def _wrap(text: str, indent: str = INDENT) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False) or []


def _key_lines(dotted: str, field: Any) -> list[str]:
    aliases = _aliases_by_target().get(dotted, [])
    renames = [a for a in aliases if a.rename]
    names = [f"--{a.name}" for a in renames] + [f"--{dotted}"]
    head = f"  {', '.join(names)} {type_name(field.annotation)}"
    extra = [f"default {_fmt(field.get_default(call_default_factory=True))}"]
    bounds = _bounds(field)
    if bounds:
        extra.append(bounds)
    lines = [f"{head}  ({'; '.join(extra)})"]
    if field.description:
        lines += _wrap(field.description)
    for alias in renames:
        if alias.note:
            lines += _wrap(f"OpenRLHF: --{alias.name}: {alias.note}")
    for alias in aliases:
        if not alias.rename:
            lines += _wrap(f"OpenRLHF: --{alias.name} sets this: {alias.note}")
    return lines


def _section_lines(name: str, model: type[BaseModel]) -> list[str]:
    lines = [f"[{name}]"]
    doc = model.__doc__
    if doc and doc not in (Section.__doc__, BaseModel.__doc__):
        lines += _wrap(" ".join(doc.split()), "  ")
    for key, field in model.model_fields.items():
        if not _is_section(field.annotation):
            lines += _key_lines(f"{name}.{key}", field)
    return lines


def openrlhf_lines() -> list[str]:
    """``--help openrlhf``: OpenRLHF v0.11's flags and what becomes of them here."""
    lines = [
        f"OpenRLHF v0.11 flags (openrlhf.cli.train_ppo_ray, checked against {oa.OPENRLHF_VERSION}) whose name "
        "differs here; every other flag of OpenRLHF's parser with a key of the same name here means the same.",
        "",
        "Accepted:",
    ]
    for alias in sorted(oa.ALIAS_LIST, key=lambda a: a.name):
        target = ", ".join(alias.targets) if alias.targets else "(nothing to set)"
        lines.append(f"  --{alias.name} -> {target}")
        if alias.note:
            lines += _wrap(alias.note)
    lines += ["", "Not supported:"]
    for refusal in sorted(oa.REFUSAL_LIST, key=lambda r: r.name):
        lines += textwrap.wrap(refusal.message(), WIDTH, initial_indent="  ", subsequent_indent=INDENT)
    for refusal in oa.VALUE_REFUSALS.values():
        lines += textwrap.wrap(refusal.message(), WIDTH, initial_indent="  ", subsequent_indent=INDENT)
    lines += [
        "",
        "Pre-0.10 flat flags (--pretrain, --micro_train_batch_size, ...) are refused with their dotted names.",
        "Defaults differ in places (docs/migrating_from_openrlhf.md): a flag left out takes this project's default.",
    ]
    return lines


def format_help(command: str, section: str = "", description: str = "") -> str:
    """The help text of a config-driven command: the summary (``section`` empty), ``all`` (every key of the
    command's sections), one section or key, or ``openrlhf``.

    Raises ConfigError for an unknown section (with suggestions).
    """
    usage = [
        f"usage: {command} [--config FILE] [--print-config] [--section.key VALUE ...]",
        f"       {command} --help [all | SECTION | KEY | openrlhf]",
    ]
    name = section.strip().lstrip("-").rstrip(".")
    if not name:
        return _summary(command, usage, description)
    if name.lower() == "openrlhf":
        return "\n".join([*usage, "", *openrlhf_lines()]) + "\n"
    if name.lower() == "all":
        return _full_help(command, usage, description)
    if name in sections():
        chosen = [(n, m) for n, m in sections().items() if n == name or n.startswith(name + ".")]
        body = [line for n, m in chosen for line in [*_section_lines(n, m), ""]]
        return "\n".join([*usage, "", *body]).rstrip() + "\n"
    if name in all_keys():
        parent, key = name.rsplit(".", 1)
        return "\n".join([*usage, "", f"[{parent}]", *_key_lines(name, sections()[parent].model_fields[key])]) + "\n"
    alias = oa.ALIASES.get(name)
    refusal = oa.REFUSED.get(name)
    if alias is not None:
        target = ", ".join(alias.targets) if alias.targets else "(nothing to set)"
        return "\n".join([*usage, "", f"  --{name} (OpenRLHF) -> {target}", *_wrap(alias.note)]) + "\n"
    if refusal is not None:
        return "\n".join([*usage, "", f"  {refusal.message()}"]) + "\n"
    top = ", ".join(Config.model_fields)
    close = did_you_mean(name, extra=(*sections(), "all", "openrlhf"), dashes="")
    raise ConfigError(f"--help {section}: no such section or key{close} (sections: {top}, all, openrlhf)")


def _full_help(command: str, usage: list[str], description: str) -> str:
    """``--help all``: every key of the command's sections with its type, default and description."""
    own = command_sections(command)
    lines = [*usage, ""]
    if description.strip():
        lines += [description.strip(), ""]
    lines += [*textwrap.wrap(VALUES_NOTE, WIDTH), "", "sections: " + ", ".join(own), ""]
    for n, m in sections().items():
        if n.split(".")[0] in own:
            lines += [*_section_lines(n, m), ""]
    return "\n".join(lines).rstrip() + "\n"


def _summary(command: str, usage: list[str], description: str) -> str:
    """``--help``: one screen: the command's sections with one line each, its most used keys, where the rest is."""
    own = command_sections(command)
    lines = [*usage, ""]
    if description.strip():
        lines += [description.strip(), ""]
    lines.append("sections (--help SECTION lists its keys):")
    lines += [f"  {name:<8} {SECTION_SUMMARY[name]}" for name in own]
    lines += ["", "most used keys (--help KEY for one):"]
    for dotted in COMMON_KEYS.get(command, ()):
        parent, key = dotted.rsplit(".", 1)
        lines.append(_key_lines(dotted, sections()[parent].model_fields[key])[0])
    lines += [
        "",
        "--help all: every key of these sections with its type, default and description, and how values are",
        "parsed; --help openrlhf: OpenRLHF's flags. Quote list values: --data.train_paths '[a.jsonl, b.jsonl]'.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--migration-table"]:
        print(oa.migration_markdown(), end="")
        return 0
    print(format_help("openrlhf-train", help_request(argv) or ""), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
