"""Counting the calls of module functions, for tests that pin how often a rule runs (a query
checked once, the policy asked once)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

#: the value checks a search's input goes through (shadowswap.values, shadowswap.stores.base)
CHECKS = ("check_tenant", "to_vector", "check_k", "check_metadata")


def count_calls(
    monkeypatch: pytest.MonkeyPatch, where: list[object], names: tuple[str, ...]
) -> Counter[str]:
    """Count the calls of ``names`` in each module of ``where`` that has them."""
    calls: Counter[str] = Counter()

    def counting(name: str, fn: Callable[..., object]) -> Callable[..., object]:
        def counted(*args: object, **kwargs: object) -> object:
            calls[name] += 1
            return fn(*args, **kwargs)

        return counted

    for module in where:
        for name in names:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, counting(name, getattr(module, name)))
    return calls
