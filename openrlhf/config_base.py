"""The base of every config section (:class:`Section`) and the error a bad key or value raises (:class:`ConfigError`).

Below openrlhf/config.py and openrlhf/config_algo.py, which build the tree on it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from openrlhf.utils.errors import UserError


class ConfigError(UserError):
    """A config key or value that is not allowed; the message names the key, value and choices."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())
