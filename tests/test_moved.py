"""Issue 14: the old import paths keep working for one release, with a warning naming the new."""

from __future__ import annotations

import importlib

import pytest

MOVED = [
    ("shadowswap.config", "load_settings", "shadowswap.settings.config"),
    ("shadowswap.rollout.live", "EnvFileSettings", "shadowswap.settings.live"),
    ("shadowswap.router", "Router", "shadowswap.read.router"),
    ("shadowswap.faults", "HangingStore", "shadowswap.testing.faults"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_old_path_forwards_with_a_deprecation_warning(old: str, name: str, new: str) -> None:
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}; import {name} from {new}"):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)


def test_a_name_the_new_module_lacks_is_an_attribute_error() -> None:
    module = importlib.import_module("shadowswap.config")
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_readme_imports_work_without_a_warning() -> None:
    from shadowswap import Document
    from shadowswap.runtime import build_runtime
    from shadowswap.settings import EnvFileSettings

    assert Document and build_runtime and EnvFileSettings
