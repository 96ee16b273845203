"""The BN-free variance schedule: each residual unit's input scale ``beta``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def variance_schedule(transitions: Iterable[bool], alpha: float, *,
                      reset_after: bool = False) -> Iterator[float]:
    """Yield ``beta = 1/sqrt(Var)`` for each residual unit of a BN-free network, in order.

    ``Var``, the expected variance of the residual stream a unit reads, starts at 1 and
    grows by ``alpha**2`` after each unit (its branch ``alpha * f(beta * x)`` adds a
    unit-variance term scaled by ``alpha``). A transition unit (``transitions`` true for
    it: its shortcut brings the stream back to unit variance) restarts ``Var`` at 1:
    before the unit reads it, or with ``reset_after`` after it, instead of the growth
    (the official BNN_NoBN schedules: the transition reads the incoming variance, the
    next unit reads 1).
    """
    expected_var = 1.0
    for transition in transitions:
        if transition and not reset_after:
            expected_var = 1.0
        yield expected_var**-0.5
        expected_var = 1.0 if transition and reset_after else expected_var + alpha**2
