"""`prodigy.util`: the helpers recipe files import, Prodigy-compatible, on Quorum's parts.

Hashing is `ledger.hashing` (the same hashes the ledger stores), reading JSONL is
`recipes.loaders` (every bad line named with its file and line number), and printing is
wasabi's, sent to stderr so a recipe's messages never mix with data a command writes to
stdout. This module never imports `prodigy`: `quorum.compat.install()` makes it that.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
from wasabi.printer import Printer as WasabiPrinter

from ledger import hashing
from recipes.args import split_string
from recipes.errors import BadSource, RecipeError
from recipes.loaders import LOADERS, _codec, _Reading, source_options

__all__ = [
    "INPUT_HASH_ATTR",
    "TASK_HASH_ATTR",
    "Printer",
    "combine_models",
    "log",
    "msg",
    "read_jsonl",
    "set_hashes",
    "split_string",
    "write_jsonl",
]

INPUT_HASH_ATTR = "_input_hash"
TASK_HASH_ATTR = "_task_hash"

Example = dict[str, Any]
Predict = Callable[[Iterable[Example]], Iterable[tuple[float, Example]]]
Update = Callable[[list[Example]], Any]


def set_hashes(
    eg: Example,
    input_keys: Iterable[str] = hashing.DEFAULT_INPUT_KEYS,
    task_keys: Iterable[str] = hashing.DEFAULT_TASK_KEYS,
    ignore: Iterable[str] = hashing.DEFAULT_IGNORE_KEYS,
    overwrite: bool = False,
) -> Example:
    """Add `_input_hash` and `_task_hash` to `eg` in place and return it.

    Quorum's `ledger.hashing.set_hashes` with its keywords also accepted by position, as
    recipe files call it; existing hashes are kept unless `overwrite` is true.
    """
    return hashing.set_hashes(
        eg, input_keys=input_keys, task_keys=task_keys, ignore=ignore, overwrite=overwrite
    )


def read_jsonl(path: str | Path) -> Iterator[Any]:
    """Yield the JSON value on each non-empty line of `path`, lazily.

    Unlike a source stream, the lines may be any JSON (a patterns file holds
    `{"label": …, "pattern": …}`), so only the reading is shared with `recipes.loaders`:
    its encoding and record-size options, and a `BadSource` naming the file and line for
    bad JSON or bytes not in the encoding.
    """
    source = Path(path)
    if not source.is_file():
        what = "is a directory" if source.is_dir() else "does not exist"
        raise BadSource(f"JSONL file {source} {what}: pass the path of a .jsonl file")
    # The loaders' reader takes its options from the `source_options` the CLI opened.
    with source_options() as options:
        reading = _Reading(source, options.encoding, _codec(options.encoding), options.max_record_bytes)
    try:
        for _number, value in LOADERS[".jsonl"](reading):
            yield value
    except OSError as exc:
        raise BadSource(f"cannot read {source}: {exc.strerror or exc}") from None


_encoder = msgspec.json.Encoder()


def write_jsonl(path: str | Path, lines: Iterable[Any]) -> None:
    """Write each value as one line of UTF-8 JSON to `path` ("-": standard output)."""
    if str(path) == "-":
        for line in lines:
            sys.stdout.write(_encoder.encode(line).decode() + "\n")
        return
    with Path(path).open("wb") as handle:
        for line in lines:
            handle.write(_encoder.encode(line) + b"\n")


class Printer(WasabiPrinter):
    """wasabi's `Printer`, writing to stderr: `msg.good("Saved")`, `msg.fail("…", exits=1)`.

    Every message is formatted by wasabi (icons, colours, wrapping) and written here
    instead of printed; `exits` flushes and exits with that code, as wasabi does.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "no_print": True})

    def text(
        self,
        title: Any = "",
        text: Any = "",
        color: str | int | None = None,
        bg_color: str | int | None = None,
        icon: str | None = None,
        spaced: bool = False,
        show: bool = True,
        no_print: bool = False,
        exits: int | None = None,
    ) -> str | None:
        """Write a message (its `title`, then `text` below); `exits` ends the process."""
        # wasabi spaces out a message that exits; `exits` itself is handled below.
        spaced = spaced or exits is not None
        out = super().text(title, text, color=color, bg_color=bg_color, icon=icon, spaced=spaced, show=show)
        if out is None:  # show=False
            return None
        if no_print:
            return str(out)
        _write(str(out))
        if exits is not None:
            sys.stdout.flush()
            sys.exit(exits)
        return None

    def divider(self, text: str = "", char: str = "=", show: bool = True, icon: str | None = None) -> None:
        """Write a full-width rule, with `text` as its headline."""
        out = super().divider(text, char, show=show, icon=icon)
        if out is not None:
            _write(str(out))

    def table(self, data: Any, **kwargs: Any) -> None:
        """Write `data` (rows, or a dict) as a table; wasabi's `table` options apply."""
        _write(str(super().table(data, **kwargs)))

    def row(self, data: Any, **kwargs: Any) -> None:
        """Write one table row; wasabi's `row` options apply."""
        _write(str(super().row(data, **kwargs)))


def _write(text: str) -> None:
    # sys.stderr is looked up on each call, so a test's (or a CLI's) redirect is honoured.
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


msg = Printer()

_LOG_VARIABLES = ("QUORUM_LOGGING", "PRODIGY_LOGGING")
_logger = logging.getLogger("quorum.compat.prodigy")


def log(message: str, details: Any = None) -> None:
    """Log a recipe's progress: `log("RECIPE: Starting recipe", locals())`.

    Always a debug record on the `quorum.compat.prodigy` logger. Written to stderr too
    when QUORUM_LOGGING (or PRODIGY_LOGGING, which old set-ups export) is `basic` (the
    message) or `verbose` (the message and its `details`); checked on each call.
    """
    _logger.debug(message, extra={"details": details})
    mode = next((os.environ[v].strip().lower() for v in _LOG_VARIABLES if os.environ.get(v)), "")
    if mode not in ("basic", "verbose"):
        return
    line = f"{time.strftime('%H:%M:%S')}: {message}"
    if mode == "verbose" and details is not None:
        line += f"\n{details!r}"
    _write(line)


def combine_models(one: Any, two: Any, batch_size: int | None = None) -> tuple[Predict, Update]:
    """Put two models in the loop as one: returns `(predict, update)`.

    Each model is an object that is called on a stream and has an `update` method (a
    `TextClassifier`, a `PatternMatcher`), or a `(predict, update)` pair. `predict` sends
    the stream to both and yields their `(score, example)` pairs in turn, lazily; the
    second model gets its own copy of each example, so one model's changes never show
    in the other's. With `batch_size`, the stream goes in batches: all of one model's
    suggestions for a batch, then the other's. `update` gives a batch of answers to both
    and returns the sum of their losses (a model that returns none counts 0).
    """
    predict_one, update_one = _model_parts(one, "first")
    predict_two, update_two = _model_parts(two, "second")

    def predict(stream: Iterable[Example]) -> Iterator[tuple[float, Example]]:
        if batch_size:
            examples = iter(stream)
            while batch := list(itertools.islice(examples, batch_size)):
                yield from predict_one(batch)
                yield from predict_two([copy.deepcopy(eg) for eg in batch])
            return
        first, second = itertools.tee(stream)
        streams = [iter(predict_one(first)), iter(predict_two(copy.deepcopy(eg) for eg in second))]
        while streams:
            for each in list(streams):
                try:
                    yield next(each)
                except StopIteration:
                    streams.remove(each)

    def update(examples: list[Example]) -> float:
        losses = (update_one(examples), update_two(examples))
        return float(sum(loss for loss in losses if loss is not None))

    return predict, update


def _model_parts(model: Any, which: str) -> tuple[Predict, Update]:
    if callable(model) and callable(getattr(model, "update", None)):
        return model, model.update
    if isinstance(model, tuple) and len(model) == 2 and all(callable(part) for part in model):
        return model[0], model[1]
    raise RecipeError(
        f"combine_models: the {which} model is a {type(model).__name__}; pass a model "
        f"(callable, with an update method) or a (predict, update) pair"
    )
