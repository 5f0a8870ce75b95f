"""A recipe's `config`, with the project's `quorum.json` underneath.

Precedence, lowest first: Quorum's defaults, `~/.quorum/quorum.json`, `./quorum.json`
(both take Prodigy's `prodigy.json` keys), the recipe's `config`, then the command line
and `QUORUM_*` variables (`recipes.settings.with_recipe_config`). The merged config
travels with the dataset to the web app (`/project`); keys it doesn't know are a warning.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recipes.errors import RecipeError

__all__ = ["CONFIG_KEYS", "UnknownConfigKey", "merged_config", "project_config", "read_instructions"]

CONFIG_KEYS = frozenset(
    {
        # serving (recipes.settings.RECIPE_CONFIG_SETTINGS)
        "batch_size",
        "feed_overlap",
        "annotations_per_task",
        "exclude_by",
        # the web app
        "labels",
        "lang",
        "choice_style",
        "choice_auto_accept",
        "instructions",
        "history_size",
        "custom_theme",
        "keymap",
        "buttons",
        "instant_submit",
        # progress
        "total_examples_target",
        "auto_count_stream",
    }
)
"""Config keys Quorum reads (Prodigy's names)."""


class UnknownConfigKey(UserWarning):
    """A config key Quorum doesn't read: a typo, or a Prodigy setting it has no use for."""


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecipeError(f"{path} is not valid JSON: {exc.msg} on line {exc.lineno}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise RecipeError(f'{path} must hold one JSON object of settings, e.g. {{"batch_size": 10}}')
    return data


def project_config(cwd: Path | None = None, home: Path | None = None) -> dict[str, Any]:
    """`~/.quorum/quorum.json` with `./quorum.json` over it (either may be missing)."""
    config: dict[str, Any] = {}
    for path in ((home or Path.home()) / ".quorum" / "quorum.json", (cwd or Path.cwd()) / "quorum.json"):
        if path.is_file():
            config.update(_read(path))
    return config


def merged_config(recipe: str, config: Mapping[str, Any], project: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe's `config` over the project's; warns once about keys nobody reads.

    A recipe may carry keys of its own for its view (`lang`…); only keys that look like
    settings from `quorum.json` or Prodigy are worth a warning, so every key is checked.
    """
    merged = {**project, **config}
    unknown = sorted(set(merged) - CONFIG_KEYS - {"routing"})
    if unknown:
        names = ", ".join(map(repr, unknown))
        warnings.warn(
            f"recipe {recipe!r}: config {names} not read by Quorum "
            f"(known keys: {', '.join(sorted(CONFIG_KEYS))})",
            UnknownConfigKey,
            stacklevel=2,
        )
    return merged


_INSTRUCTIONS_LIMIT = 256 * 1024


def read_instructions(config: dict[str, Any], base: Path | None = None) -> dict[str, Any]:
    """`config` with its `instructions` file read in: the web app shows the text from a
    help button (`{"format": "html" | "markdown", "text": …}`), since a browser can't read
    the server's files. A relative path is relative to `base` (the working directory)."""
    value = config.get("instructions")
    if value is None or isinstance(value, dict):
        return config
    if not isinstance(value, str) or not value:
        raise RecipeError(f"config 'instructions' is {value!r}; give the path of an HTML or Markdown file")
    path = Path(value)
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    if not path.is_file():
        raise RecipeError(
            f"instructions file {value} does not exist; give the path of an HTML or Markdown file"
        )
    if path.stat().st_size > _INSTRUCTIONS_LIMIT:
        raise RecipeError(
            f"instructions file {value} is over {_INSTRUCTIONS_LIMIT // 1024} KiB; keep it short"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RecipeError(f"instructions file {value} is not UTF-8 text") from None
    kind = "html" if path.suffix.lower() in (".html", ".htm") else "markdown"
    return {**config, "instructions": {"format": kind, "text": text}}
