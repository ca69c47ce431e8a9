"""Deprecation aliases for modules that moved (issue 14), kept for one release.

An old module path keeps working: it hands out the new module's names, with a
`DeprecationWarning` that names the new path, the first time each name is asked for.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def alias(old: str, new: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``old`` that forwards to module ``new``."""

    def forward(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        target = importlib.import_module(new)
        value = getattr(target, name)  # AttributeError as usual for a missing name
        warnings.warn(
            f"{old} moved to {new}; import {name} from {new} ({old} goes in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    return forward
