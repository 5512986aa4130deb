"""The checks the config sections share: one wording per kind of problem ("NAME must be a positive
integer, got VALUE"), and the choices of every Literal-typed field."""

from __future__ import annotations

import math
import typing
from typing import Any, Literal


def integer(value) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value) -> bool:
    return integer(value) and value > 0


def positive(value) -> bool:
    return math.isfinite(value) and value > 0


def non_negative(value) -> bool:
    return math.isfinite(value) and value >= 0


SEED_LIMIT = 2**32
"""Seeds are in [0, 2**32): what NumPy's and Gymnasium's seeding take."""
MAX_STEPS = 10**10
"""Step counts above this (over a year at 300 steps/s) are taken for typing mistakes."""


def seed(value) -> bool:
    return integer(value) and 0 <= value < SEED_LIMIT


def require(section, names: tuple[str, ...], test, words: str) -> list[str]:
    """"NAME must be WORDS, got VALUE" for each field of `names` whose value fails `test`."""
    return [f"{name} must be {words}, got {getattr(section, name)!r}" for name in names
            if not test(getattr(section, name))]


def positive_ints(section, *names: str) -> list[str]:
    return require(section, names, positive_int, "a positive integer")


def positive_numbers(section, *names: str) -> list[str]:
    return require(section, names, positive, "a positive number")


def choice_problems(obj: Any) -> list[str]:
    """A message for every field of dataclass `obj` typed as a Literal whose value is not one of its
    choices (values given in Python skip `coerce_fields`)."""
    out = []
    for name, tp in typing.get_type_hints(type(obj), include_extras=False).items():
        if typing.get_origin(tp) is Literal and getattr(obj, name) not in typing.get_args(tp):
            out.append(f"{name} must be one of {', '.join(map(str, typing.get_args(tp)))}; got {getattr(obj, name)!r}")
    return out
