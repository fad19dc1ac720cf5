"""Argument types of the ``intervene`` command line: each refuses a value outside its range, so that
argparse exits 2 with one line naming the flag (``argument --k: -5 is not a positive integer``)
instead of a stage running on it (``--k -5`` used to drop each instance's 5 lowest documents).

Integers stop at 2**63 - 1: every count and seed ends up in a numpy int64 or a torch seed.
Cross-argument rules (``--first`` below ``--last``) are :class:`CheckedParser` checks, run by
argparse's own parse so that they exit the same way.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

INT64_MAX = 2**63 - 1


def _int(text: str, lo: int, what: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not lo <= v <= INT64_MAX:
        raise argparse.ArgumentTypeError(f"{v} is not {what}")
    return v


def positive_int(text: str) -> int:
    """A count that must be at least 1 (k, steps, group sizes, workers)."""
    return _int(text, 1, "a positive integer (1 .. 2**63-1)")


def nonneg_int(text: str) -> int:
    """A batch, step, index or seed: 0 or more (numpy refuses negative seeds)."""
    return _int(text, 0, "a non-negative integer (0 .. 2**63-1)")


def _float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return v


def finite_float(text: str) -> float:
    """A threshold on scores that may be negative (dense dot products): any finite number."""
    return _float(text)


def nonneg_float(text: str) -> float:
    """A tolerance: finite and 0 or more."""
    v = _float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} is negative")
    return v


def open_unit_float(text: str) -> float:
    """A confidence level: strictly between 0 and 1."""
    v = _float(text)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"{v} is not strictly between 0 and 1")
    return v


def batch_range(text: str) -> range:
    """``START:END``, batches [START, END) with 0 <= START < END."""
    lo, sep, hi = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not START:END")
    a, b = nonneg_int(lo), nonneg_int(hi)
    if a >= b:
        raise argparse.ArgumentTypeError(f"{text!r} is empty (START must be below END)")
    return range(a, b)


Check = tuple[Callable[[argparse.Namespace], bool], str]


class CheckedParser(argparse.ArgumentParser):
    """An ArgumentParser that also runs its :meth:`require` checks after parsing (subparsers made by
    ``add_subparsers`` are of the same class): a failed check exits 2 with its message, the way a
    bad single value does."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._checks: list[Check] = []

    def require(self, ok: Callable[[argparse.Namespace], bool], message: str) -> None:
        """``ok(namespace)`` must hold (it sees None for flags not given)."""
        self._checks.append((ok, message))

    def parse_known_args(self, args=None, namespace=None):
        ns, extra = super().parse_known_args(args, namespace)
        for ok, message in self._checks:
            if not ok(ns):
                self.error(message)
        return ns, extra


def below(lo: str, hi: str) -> Callable[[argparse.Namespace], bool]:
    """Check: ``--lo`` < ``--hi`` when both are given (attribute names)."""

    def ok(a: argparse.Namespace) -> bool:
        x, y = getattr(a, lo), getattr(a, hi)
        return x is None or y is None or x < y

    return ok
