"""`prodigy.components.sorters`: choose which of a model's suggestions to ask about.

A sorter reads `(score, example)` pairs from a model and yields the examples worth
an annotator's time, one at a time: it never reads ahead, so it works on an endless
stream and follows a model that changes as it learns. Each sorter turns a score into a
priority between 0 and 1 (how uncertain, how high, how low) and then decides:

- `"ema"` (the default): yield an example when its priority, plus `bias`, is at least
  the exponential moving average of the priorities seen so far. About the better half
  gets through, whatever the scale of the model's scores.
- `"probability"`: yield an example with a probability equal to its priority plus
  `bias` (clipped to 0..1). Pass `seed` for the same choices on every run.

A positive `bias` lets more examples through, a negative one fewer. So that a stream
never stalls (scores that keep falling stay below their own average), no more than
`PATIENCE` examples in a row are passed over: the next one is yielded.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from recipes.errors import RecipeError

__all__ = ["ALGORITHMS", "PATIENCE", "prefer_high_scores", "prefer_low_scores", "prefer_uncertain"]

ALGORITHMS = ("ema", "probability")
PATIENCE = 20
"""The most examples in a row a sorter passes over."""

_SMOOTHING = 0.1  # weight of the newest priority in the moving average

Example = dict[str, Any]
Scored = Iterable[tuple[float, Example]]


def prefer_uncertain(
    stream: Scored, bias: float = 0.0, algorithm: str = "ema", *, seed: int | None = None
) -> Iterator[Example]:
    """Prefer the examples the model is least sure about: scores near 0.5."""
    return _sort(stream, _uncertainty, bias, algorithm, seed, "prefer_uncertain")


def prefer_high_scores(
    stream: Scored, bias: float = 0.0, algorithm: str = "ema", *, seed: int | None = None
) -> Iterator[Example]:
    """Prefer the examples the model scores highest: scores near 1."""
    return _sort(stream, _height, bias, algorithm, seed, "prefer_high_scores")


def prefer_low_scores(
    stream: Scored, bias: float = 0.0, algorithm: str = "ema", *, seed: int | None = None
) -> Iterator[Example]:
    """Prefer the examples the model scores lowest: scores near 0."""
    return _sort(stream, _lowness, bias, algorithm, seed, "prefer_low_scores")


def _uncertainty(score: float) -> float:
    return 1.0 - 2.0 * abs(score - 0.5)


def _height(score: float) -> float:
    return score


def _lowness(score: float) -> float:
    return 1.0 - score


def _sort(
    stream: Scored,
    priority: Callable[[float], float],
    bias: float,
    algorithm: str,
    seed: int | None,
    name: str,
) -> Iterator[Example]:
    # Checked here, not in the generator, so a wrong argument fails where it is given.
    if algorithm not in ALGORITHMS:
        raise RecipeError(f"{name}: unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    if algorithm == "ema":
        return _by_average(_priorities(stream, priority, name), bias)
    return _by_chance(_priorities(stream, priority, name), bias, random.Random(seed))


def _priorities(
    stream: Scored, priority: Callable[[float], float], name: str
) -> Iterator[tuple[float, Example]]:
    for item in stream:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise RecipeError(
                f"{name} takes (score, example) pairs from a model, got a {type(item).__name__}: "
                f"pass the stream through the model first, e.g. {name}(model(stream))"
            )
        score, eg = item
        if isinstance(score, bool) or not isinstance(score, int | float) or math.isnan(score):
            raise RecipeError(f"{name}: the model gave the score {score!r}; scores are numbers from 0 to 1")
        yield priority(min(max(float(score), 0.0), 1.0)), eg


def _by_average(scored: Iterator[tuple[float, Example]], bias: float) -> Iterator[Example]:
    average: float | None = None
    passed = 0
    for value, eg in scored:
        # Compared with the average *before* this example, so a lone high one stands out.
        if average is None or value + bias >= average - 1e-12 or passed >= PATIENCE:
            passed = 0
            yield eg
        else:
            passed += 1
        average = value if average is None else average + _SMOOTHING * (value - average)


def _by_chance(scored: Iterator[tuple[float, Example]], bias: float, rng: random.Random) -> Iterator[Example]:
    passed = 0
    for value, eg in scored:
        if rng.random() < value + bias or passed >= PATIENCE:
            passed = 0
            yield eg
        else:
            passed += 1
