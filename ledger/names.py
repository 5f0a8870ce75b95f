"""Validation of dataset and session names.

Names become NATS subject tokens (`quorum.tasks.<dataset>.<hash>`), so they may not
contain `.`, `*`, `>` or whitespace. We allow a conservative, readable alphabet rather
than encoding arbitrary names: a name you can type in a shell is a name you can read
in `nats stream view` too.
"""

from __future__ import annotations

import re

from ledger.errors import InvalidName

__all__ = ["NAME_JSON_PATTERN", "NAME_PATTERN", "validate_dataset_name", "validate_session_name"]

# `\A…\Z`, and `fullmatch` below: `$` also matches before a trailing newline, so
# `?session=alex%0A` passed and the newline reached a NATS subject (a 500, issue 11 §5).
NAME_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_\-]{0,127}\Z")
# The same rule for JSON Schema (the OpenAPI schema), whose regexes have no `\A`/`\Z`
# and whose `$` never matches before a newline.
NAME_JSON_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"


def _validate(kind: str, name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidName(
            f"invalid {kind} name {name!r}: use 1-128 letters, digits, '_' or '-', "
            f"starting with a letter or digit (no '.', '*', '>' or spaces, because the "
            f"name becomes part of a NATS subject)"
        )
    return name


def validate_dataset_name(name: str) -> str:
    """Return `name` if it can be a dataset name, else raise `InvalidName`."""
    return _validate("dataset", name)


def validate_session_name(name: str) -> str:
    """Return `name` if it can be a session name, else raise `InvalidName`."""
    return _validate("session", name)
