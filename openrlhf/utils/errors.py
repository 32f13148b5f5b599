"""The project's user-facing error: a problem with what the user gave, not a bug in the code.

A :class:`UserError` says what is wrong and where (a config key and its value, a data file and line, a missing
environment variable, a checkpoint that does not fit) in its message. The entry points
(openrlhf/cli/common.py) print it as one line and exit 1; any other exception, a plain ``ValueError`` from an
internal shape check included, keeps its traceback. It subclasses ``ValueError``, so code that catches
``ValueError`` around a user-facing call still catches it.

Subclasses: :class:`openrlhf.config.ConfigError` (a config key or value),
:class:`openrlhf.data.errors.DatasetError` (a dataset that cannot be used).
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem with the user's input (config, data, files, environment), named in the message."""
