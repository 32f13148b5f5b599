"""Loading the typed config tree (openrlhf/config.py): the command line, YAML files and their errors.

Command-line values are parsed by their key's type (strings stay strings; lists take ``[a, b]``, ``a,b`` or
several values; pairs take two values). OpenRLHF v0.11's flag names work on the command line and in YAML
(openrlhf/openrlhf_flags/). The problems of one source are reported together in one
:class:`~openrlhf.config.ConfigError`. This module builds on openrlhf/config.py (the tree), never the other way.

``CONFIG_DIR``: the YAML configs shipped inside the package (openrlhf/configs/, package data), so
``openrlhf-train`` finds its demo config after a plain ``pip install .``; the checkout's top-level configs/ is
a link to the same folder.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from openrlhf import openrlhf_flags
from openrlhf.config import Config, ConfigError
from openrlhf.openrlhf_flags import MISSING as _MISSING

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def default_config_path(name: str) -> str | None:
    """The shipped config ``name`` (e.g. demo_text.yaml) in CONFIG_DIR; None when there is no such file."""
    path = CONFIG_DIR / name
    return str(path) if path.is_file() else None


def _describe_allowed(model: type[BaseModel], key: str) -> str:
    field = model.model_fields.get(key)
    if field is None:
        return ""
    choices = get_args(field.annotation)
    if choices and all(isinstance(c, (str, int)) for c in choices):
        return " (allowed: " + ", ".join(repr(c) for c in choices) + ")"
    return f" (expected {getattr(field.annotation, '__name__', field.annotation)})"


def _section_at(path: list[str]) -> type[BaseModel]:
    model: type[BaseModel] = Config
    for part in path:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return model


def _format_validation_error(err: ValidationError, values: dict[str, Any]) -> str:
    lines = []
    for item in err.errors():
        loc = [str(p) for p in item["loc"]]
        key = ".".join(loc)
        value: Any = values
        for part in loc:
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                value = None
        if item["type"] == "extra_forbidden":
            lines.append(_unknown_key_line(key))
        elif item["type"] == "value_error" and (not loc or _section_at(loc) is not _section_at(loc[:-1])):
            # a section's own cross-field check: its message names the keys
            lines.append(item["msg"].removeprefix("Value error, "))
        else:
            hint = _describe_allowed(_section_at(loc[:-1]), loc[-1]) if loc else ""
            lines.append(f"bad value for '{key}': {value!r}: {item['msg']}{hint}")
    return "invalid config:\n  " + "\n  ".join(lines)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key '{dotted}': '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field_info(dotted: str) -> Any:
    """The pydantic FieldInfo of the config key ``dotted`` (``algo.kl.init_kl_coef``), or None."""
    model: type[BaseModel] = Config
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return None
        if i == len(parts) - 1:
            return field
        if not _is_section(field.annotation):
            return None
        model = field.annotation
    return None


def _field_at(dotted: str) -> Any:
    """The annotation (type) of the config key ``dotted``, or ``_MISSING`` when there is no such key."""
    field = _field_info(dotted)
    return _MISSING if field is None else field.annotation


def _field_default(dotted: str) -> Any:
    field = _field_info(dotted)
    return _MISSING if field is None else field.get_default(call_default_factory=True)


def _get_dotted(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _split_items(raws: list[str]) -> list[str]:
    """List values: several values after the flag, ``[a, b]`` (YAML flow syntax), or ``a,b`` (OpenRLHF's)."""
    if len(raws) != 1:
        return list(raws)
    text = raws[0].strip()
    if text.startswith("["):
        try:
            items = yaml.load(text, Loader=yaml.BaseLoader)  # every scalar stays text
        except yaml.YAMLError:
            return [text]
        return [str(item) for item in items] if isinstance(items, list) else [text]
    if not text:
        return []
    if "," in text:
        return [part.strip() for part in text.split(",") if part.strip()]
    return [text]


def _unquoted(text: str) -> str:
    """A value wholly inside one pair of quotes, as a shell passes ``"''"`` or a YAML user writes ``'0123'``,
    is the text between them (``--plan.model_size ''`` is empty); anything else is kept as given."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" and text[0] not in text[1:-1]:
        return text[1:-1]
    return text


def _parse_scalar(text: str, annotation: Any = str) -> Any:
    """One command-line value, parsed by the type of its key: ``0123`` stays text for a str key, booleans
    are true/false/1/0/yes/no/on/off. Text that does not parse stays text, so validation names the key."""
    text = _unquoted(text)
    origin = get_origin(annotation)
    if origin is Literal:
        for choice in get_args(annotation):
            if str(choice) == text:
                return choice
        return text
    if origin in (Union, UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        if len(options) < len(get_args(annotation)) and text.strip().lower() in ("null", "none", "~"):
            return None
        return _parse_scalar(text, options[0]) if len(options) == 1 else text
    if annotation is bool:
        low = text.strip().lower()
        return True if low in _TRUE else False if low in _FALSE else text
    if annotation in (int, float):
        try:
            return annotation(text)
        except ValueError:
            return text
    if _is_section(annotation):
        try:  # a whole section as a YAML mapping: --actor.lora "{rank: 8, alpha: 16}"
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return text
    return text


def _parse_value(annotation: Any, raws: list[str], flag: str) -> Any:
    """The command-line values after ``flag`` parsed by ``annotation``; raises ConfigError on a wrong count."""
    origin = get_origin(annotation) or annotation
    if origin in (list, tuple):
        args = [a for a in get_args(annotation) if a is not Ellipsis] or [str]
        items = _split_items(raws)
        return [_parse_scalar(item, args[min(i, len(args) - 1)]) for i, item in enumerate(items)]
    if not raws:
        if annotation is bool:
            return True  # a bare --flag
        raise ConfigError(f"{flag} needs a value ({_type_name(annotation)})")
    if len(raws) > 1:
        shown = " ".join(repr(r) for r in raws)
        raise ConfigError(f"{flag} takes one value ({_type_name(annotation)}), got {len(raws)}: {shown}")
    return _parse_scalar(raws[0], annotation)


def _type_name(annotation: Any) -> str:
    from openrlhf.config_help import type_name

    return type_name(annotation)


def _unknown_key_line(dotted: str) -> str:
    from openrlhf.config_help import did_you_mean

    parts = dotted.split(".")
    model: type[BaseModel] = Config
    known: list[str] = []
    for part in parts[:-1]:
        field = model.model_fields.get(part)
        if field is None or not _is_section(field.annotation):
            break
        model = field.annotation
        known.append(part)
    prefix = ".".join(known) or "<top level>"
    allowed = ", ".join(sorted(model.model_fields))
    return f"unknown config key '{dotted}'{did_you_mean(dotted)} (allowed under {prefix}: {allowed})"


class _Overrides:
    """Dotted keys -> values from one source (the command line or a YAML file), with OpenRLHF's names
    translated (openrlhf/openrlhf_flags/) and every problem collected, then reported together."""

    def __init__(self, source: str, base: dict[str, Any] | None = None) -> None:
        self.aliases = openrlhf_flags
        self.source = source
        self.base = base or {}
        self.tree: dict[str, Any] = {}
        self.refused: list[str] = []
        self.flat: list[str] = []
        self.problems: list[str] = []
        self.deferred: list[tuple[Any, Any]] = []
        self.lookup = openrlhf_flags.Lookup(self._lookup, _field_default)

    def _lookup(self, dotted: str) -> Any:
        found = _get_dotted(self.tree, dotted)
        return _get_dotted(self.base, dotted) if found is _MISSING else found

    def add(self, key: str, raws: list[str] | None = None, value: Any = _MISSING) -> None:
        """``raws``: command-line texts, parsed by the key's type; ``value``: an already typed (YAML) value."""
        oa = self.aliases
        flag = f"--{key}"
        try:
            if "." not in key:
                if key in oa.FLAT_FLAGS:
                    self.flat.append(oa.flat_replacement(key))
                elif key in oa.REFUSED:
                    self.refused.append(oa.REFUSED[key].message())
                else:
                    from openrlhf.config_help import did_you_mean

                    self.problems.append(
                        f"option '{flag}' names no section{did_you_mean(key)}; use --section.key "
                        f"(sections: {', '.join(Config.model_fields)})"
                    )
                return
            annotation = _field_at(key)
            if annotation is _MISSING and key in oa.REFUSED:
                self.refused.append(oa.REFUSED[key].message())
                return
            alias = oa.ALIASES.get(key)
            if alias is not None and (annotation is _MISSING or key in alias.targets):
                kind = alias.kind if alias.kind is not None else _field_at(alias.targets[0])
                parsed = self._parse(kind, raws, value, flag)
                if alias.deferred:
                    self.deferred.append((alias, parsed))
                else:
                    self._apply(alias, parsed)
                return
            if annotation is _MISSING:
                self.problems.append(_unknown_key_line(key))
                return
            parsed = self._parse(annotation, raws, value, flag)
            refusal = oa.VALUE_REFUSALS.get((key, parsed)) if isinstance(parsed, (str, int, float)) else None
            if refusal is not None:
                self.refused.append(refusal.message())
                return
            _set_dotted(self.tree, key, parsed)
        except ConfigError as exc:
            self.problems.append(str(exc))

    @staticmethod
    def _parse(annotation: Any, raws: list[str] | None, value: Any, flag: str) -> Any:
        if raws is not None:
            return _parse_value(annotation, raws, flag)
        if isinstance(value, str) and (get_origin(annotation) or annotation) in (list, tuple):
            return _parse_value(annotation, [value], flag)  # a YAML string for a list: "a.jsonl,b.jsonl"
        return value

    def _apply(self, alias: Any, value: Any) -> None:
        try:
            updates = alias.apply(value, self.lookup)
        except self.aliases.AliasRefused as exc:
            self.refused.append(self.aliases.refusal_message(alias.name, exc.reason, exc.instead, exc.issue))
            return
        except self.aliases.AliasValueError as exc:
            self.problems.append(f"--{alias.name}: {exc}")
            return
        for dotted, new in updates.items():
            _set_dotted(self.tree, dotted, new)

    def finish(self) -> dict[str, Any]:
        for alias, value in self.deferred:
            self._apply(alias, value)
        lines: list[str] = []
        if self.refused:
            lines.append(f"OpenRLHF flags not supported ({len(self.refused)}):")
            lines += [f"  {line}" for line in self.refused]
        if self.flat:
            lines.append("OpenRLHF's pre-0.10 flat flags: each names no section here; use the dotted names:")
            lines += [f"  {line}" for line in self.flat]
        lines += self.problems
        if lines:
            raise ConfigError(f"{self.source}:\n  " + "\n  ".join(lines))
        return self.tree


def parse_overrides(argv: list[str], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Turn ``--a.b value`` / ``--a.b=value`` / ``--flag`` (true) / ``--a.b v1 v2`` into a nested dict.

    Values are parsed by their key's type; OpenRLHF v0.11's names are translated (openrlhf/openrlhf_flags/);
    ``base`` (the YAML file's values) is what converters that depend on other keys see besides ``argv``.
    Unsupported OpenRLHF flags, pre-0.10 flat flags, unknown keys and malformed values are reported together
    in one ConfigError.
    """
    overrides = _Overrides("invalid command line", base)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) == 2:
            overrides.problems.append(f"unexpected argument {arg!r}: options look like --section.key value")
            i += 1
            continue
        key = arg[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
            raws = [raw]
            i += 1
        else:
            j = i + 1
            while j < len(argv) and not (argv[j].startswith("--") and len(argv[j]) > 2):
                j += 1
            raws = argv[i + 1 : j]
            i = j
        overrides.add(key, raws=raws)
    return overrides.finish()


def _flatten(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) leaves of a YAML tree; descends into sections and OpenRLHF name prefixes."""
    names = openrlhf_flags.known_names()
    leaves: list[tuple[str, Any]] = []
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        annotation = _field_at(dotted)
        descend = (
            _is_section(annotation)
            if annotation is not _MISSING
            else any(name.startswith(dotted + ".") for name in names)
        )
        if isinstance(value, dict) and descend:
            leaves += _flatten(value, dotted + ".")
        else:
            leaves.append((dotted, value))
    return leaves


def translate_yaml(values: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """A YAML config tree with OpenRLHF's names translated, as the command line's are."""
    overrides = _Overrides(f"{source}: invalid config")
    for dotted, value in _flatten(values):
        overrides.add(dotted, value=value)
    return overrides.finish()


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def build_config(values: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(values)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, values)) from None


def load_config(argv: list[str] | None = None, default_config: str | None = None) -> tuple[Config, bool]:
    """Parse ``[--config FILE] [--print-config] [--a.b value ...]``; returns (config, print_requested).

    ``default_config`` is the YAML used when no ``--config`` is given (the embedded default of a CLI). The
    file's OpenRLHF names are translated like the command line's, and the command line wins over the file.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    config_path = default_config
    print_config = False
    rest: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--config":
            if i + 1 >= len(argv):
                raise ConfigError("--config needs a YAML file path")
            config_path = argv[i + 1]
            i += 2
        elif argv[i].startswith("--config="):
            config_path = argv[i].split("=", 1)[1]
            i += 1
        elif argv[i] == "--print-config":
            print_config = True
            i += 1
        else:
            rest.append(argv[i])
            i += 1
    values = translate_yaml(load_yaml(config_path), str(config_path)) if config_path else {}
    values = _deep_merge(values, parse_overrides(rest, base=values))
    return build_config(values), print_config
