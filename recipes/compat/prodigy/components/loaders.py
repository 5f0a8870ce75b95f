"""`prodigy.components.loaders`: Prodigy-compatible source loaders on `recipes.loaders`.

Each loader is lazy (a million-line file never sits in memory) and checks what it
reads the way Quorum's own recipes do: a bad line raises `BadSource` naming the file,
the line and the fix, and every example carries a `"text"` string. `get_stream` picks
the loader from the file's suffix and gives every example its hashes.
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ledger.hashing import DEFAULT_INPUT_KEYS, set_hashes
from recipes import loaders
from recipes.errors import BadSource, RecipeError

__all__ = ["CSV", "JSON", "JSONL", "TXT", "Images", "get_stream"]

Example = dict[str, Any]

IMAGES = "images"
"""The loader name for a directory of images; a directory source uses it by default."""


def JSONL(path: str | Path) -> Iterator[Example]:
    """The examples of a JSON Lines file, one object per line, whatever its suffix."""
    return loaders.get_stream(path, "jsonl")


def JSON(path: str | Path) -> Iterator[Example]:
    """The examples of a JSON file holding one array of objects."""
    return loaders.get_stream(path, "json")


def CSV(path: str | Path) -> Iterator[Example]:
    """One example per row of a CSV file with a `text` column (`label` kept, the rest in `meta`)."""
    return loaders.get_stream(path, "csv")


def TXT(path: str | Path) -> Iterator[Example]:
    """One `{"text": line}` example per non-empty line of a text file."""
    return loaders.get_stream(path, "txt")


def Images(path: str | Path) -> Iterator[Example]:
    """One example per image file in the directory `path`, in name order.

    An example is `{"image": "data:image/png;base64,…", "text": name, "meta": {"file":
    name}}`; files that are not images (by their suffix), hidden files and
    subdirectories are skipped. An image whose data is over the per-task size limit
    raises `BadSource` naming it, as a record over the limit does in any source.
    """
    folder = Path(path)
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise BadSource(f"image source {folder} {what}: pass a directory of image files")
    with loaders.source_options() as options:  # the options the CLI opened, unchanged
        limit = options.max_record_bytes
    for file in sorted(folder.iterdir()):
        mime, _ = mimetypes.guess_type(file.name)
        if file.name.startswith(".") or not file.is_file() or not (mime or "").startswith("image/"):
            continue
        try:
            data = base64.b64encode(file.read_bytes()).decode("ascii")
        except OSError as exc:
            raise BadSource(f"cannot read image {file}: {exc.strerror or exc}") from None
        uri = f"data:{mime};base64,{data}"
        if len(uri) > limit:
            raise BadSource(
                f"image {file.name} in {folder} is {len(uri):,} bytes as a data URI, over the limit "
                f"of {limit:,} per task: shrink it, or raise the limit with --max-task-bytes / "
                f"QUORUM_MAX_TASK_BYTES"
            )
        yield {"image": uri, "text": file.name, "meta": {"file": file.name}}


def get_stream(
    source: str | Path | Iterable[Example],
    api: Any = None,
    loader: str | None = None,
    rehash: bool = False,
    dedup: bool = False,
    input_key: str = "text",
    is_binary: bool = False,
) -> Iterator[Example]:
    """The examples of `source` with their hashes, lazily.

    `source` is a file (its suffix picks the loader unless `loader` names one:
    `jsonl`, `json`, `csv`, `txt`), a directory of images (loader `images`), or an
    iterable of examples already loaded. Every example gets `_input_hash` and
    `_task_hash`; `rehash` recomputes hashes the examples came with, and `dedup` drops
    an example whose input hash was already seen. `input_key` names the example's
    input: when it is not `text`, a text file's lines are also stored under it and the
    input hash covers that key alone. `is_binary` is accepted for compatibility and
    changes nothing; `api` (loaders for remote APIs) is not supported.
    """
    if api is not None:
        raise RecipeError(
            f"get_stream: remote API loaders (api={api!r}) are not supported; "
            f"save the examples to a .jsonl file and pass its path"
        )
    examples = _examples(source, loader, input_key)
    input_keys = DEFAULT_INPUT_KEYS if input_key == "text" else (input_key,)
    return _hashed(examples, input_keys, rehash=rehash, dedup=dedup)


def _examples(
    source: str | Path | Iterable[Example], loader: str | None, input_key: str
) -> Iterator[Example]:
    if source is None or str(source) == "-":
        raise BadSource(
            "reading examples from standard input is not supported: save them to a file "
            "(e.g. news.jsonl) and pass its path as the source"
        )
    if not isinstance(source, str | Path):
        return iter(source)
    path = Path(source)
    if (loader or "").lower() == IMAGES or (loader is None and path.is_dir()):
        return Images(path)
    examples = loaders.get_stream(path, loader)
    if input_key != "text" and (loader or path.suffix).lstrip(".").lower() == "txt":
        return _copy_text(examples, input_key)
    return examples


def _copy_text(examples: Iterator[Example], key: str) -> Iterator[Example]:
    for eg in examples:
        eg[key] = eg["text"]
        yield eg


def _hashed(
    examples: Iterator[Example], input_keys: tuple[str, ...], *, rehash: bool, dedup: bool
) -> Iterator[Example]:
    seen: set[int] = set()
    for number, eg in enumerate(examples, start=1):
        if not isinstance(eg, dict):
            raise RecipeError(f"example {number} of the stream is a {type(eg).__name__}, not a dict")
        set_hashes(eg, input_keys=input_keys, overwrite=rehash)
        if dedup:
            if eg["_input_hash"] in seen:
                continue
            seen.add(eg["_input_hash"])
        yield eg
