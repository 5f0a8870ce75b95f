"""`prodigy.components.stream`: the `Stream` object newer recipe files build on.

A `Stream` is a lazy iterator of examples that grows by wrapping:
`stream.apply(add_tokens, nlp=nlp, stream=stream)` replaces what it yields with what
`add_tokens` makes of it, and returns the same object, so both the in-place and the
`stream = stream.apply(…)` style work. Nothing is read until the stream is iterated.
Loading is `components.loaders.get_stream`'s: the same loaders, hashes and checks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from recipes.compat.prodigy.components import loaders

__all__ = ["Stream", "get_stream"]

Example = dict[str, Any]


class Stream:
    """A lazy stream of examples: iterate it, or wrap it further with `apply`."""

    def __init__(self, examples: Iterable[Any]) -> None:
        self._examples: Iterator[Any] = iter(examples)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self._examples)

    def apply(self, func: Callable[..., Iterable[Any]], *args: Any, **kwargs: Any) -> Stream:
        """Wrap the stream through `func` and return this stream.

        `func` gets the examples so far where the call names this stream (`stream=stream`,
        or as a positional argument); otherwise as its `stream` keyword when it has that
        parameter and the call gives none (`apply(add_tokens, nlp)`), else as its first
        argument (`apply(add_options)`). The other arguments are passed on unchanged.
        """
        current = self._examples
        named = any(arg is self for arg in args) or any(value is self for value in kwargs.values())
        if named:
            args = tuple(current if arg is self else arg for arg in args)
            kwargs = {key: current if value is self else value for key, value in kwargs.items()}
        elif "stream" in kwargs:
            pass  # the call names another stream to wrap: leave it to the call
        elif _takes_stream_keyword(func):
            kwargs["stream"] = current
        else:
            args = (current, *args)
        self._examples = iter(func(*args, **kwargs))
        return self


def _takes_stream_keyword(func: Callable[..., Any]) -> bool:
    try:
        parameter = inspect.signature(func).parameters.get("stream")
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return parameter is not None and parameter.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


def get_stream(
    source: str | Path | Iterable[Example],
    *,
    loader: str | None = None,
    rehash: bool = False,
    dedup: bool = False,
    input_key: str = "text",
    is_binary: bool = False,
) -> Stream:
    """The examples of `source`, with their hashes, as a `Stream`.

    The same loading as `components.loaders.get_stream` (suffix or `loader` picks the
    loader; `rehash`, `dedup` and `input_key` as there), with keyword-only options.
    """
    return Stream(
        loaders.get_stream(
            source, loader=loader, rehash=rehash, dedup=dedup, input_key=input_key, is_binary=is_binary
        )
    )
