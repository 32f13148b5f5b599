"""OpenRLHF v0.11's command-line flags on this project's config tree.

OpenRLHF (0.10 and later, ``openrlhf.cli.train_ppo_ray``) takes dotted flags as this project does, with other
names in many places. Three tables, applied by :func:`openrlhf.config_loading.parse_overrides` (and to YAML files)
before validation:

- :data:`ALIASES`: an OpenRLHF name -> the dotted path(s) it sets here, a value converter and a note. Pure
  renames keep the meaning and the value; the others convert (``--ds.param_dtype bf16`` -> ``ds.bf16 true``,
  ``--ckpt.save_steps -1`` -> ``ckpt.interval 0``) or accept only the values whose meaning this project has
  (``--logger.logging_steps 1``).
- :data:`REFUSED`: OpenRLHF settings this project does not have. The refusal names the flag as OpenRLHF's,
  says it is not supported (here, or yet: with the issue that adds it) and what to use instead.
- :data:`FLAT_FLAGS`: OpenRLHF's pre-0.10 flat flags (``--pretrain``) -> the dotted name.

Every name was checked against OpenRLHF 0.11.2's parser (tests/config/test_openrlhf_flags.py reads it from
the real wheel). docs/migrating_from_openrlhf.md holds the table rendered by :func:`migration_markdown`.

Modules: ``core`` (Alias, Refusal, Lookup, the converters), ``tables`` (ALIASES, REFUSED, VALUE_REFUSALS),
``flat_flags`` (FLAT_FLAGS), ``docs`` (the migration tables). This package imports nothing from
:mod:`openrlhf.config`: the config loading code (openrlhf/config_loading.py) uses it.
"""

from openrlhf.openrlhf_flags.core import (
    ISSUE_SPEED,
    MISSING,
    OPENRLHF_VERSION,
    Alias,
    AliasRefused,
    AliasValueError,
    Converter,
    Lookup,
    Refusal,
    refusal_message,
)
from openrlhf.openrlhf_flags.docs import DEFAULTS_DIFFER, SAME_NAMES, migration_markdown
from openrlhf.openrlhf_flags.flat_flags import FLAT_FLAGS, flat_replacement
from openrlhf.openrlhf_flags.tables import ALIAS_LIST, ALIASES, REFUSAL_LIST, REFUSED, VALUE_REFUSALS, known_names

__all__ = [
    "ALIASES",
    "ALIAS_LIST",
    "DEFAULTS_DIFFER",
    "FLAT_FLAGS",
    "ISSUE_SPEED",
    "MISSING",
    "OPENRLHF_VERSION",
    "REFUSAL_LIST",
    "REFUSED",
    "SAME_NAMES",
    "VALUE_REFUSALS",
    "Alias",
    "AliasRefused",
    "AliasValueError",
    "Converter",
    "Lookup",
    "Refusal",
    "flat_replacement",
    "known_names",
    "migration_markdown",
    "refusal_message",
]
