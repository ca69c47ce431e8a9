"""The one variable dual write adds: RETRIEVAL_DUAL_WRITE_TIMEOUT_MS."""

from __future__ import annotations

import pytest

from shadowswap.errors import ConfigError
from shadowswap.settings.config import load_settings


def test_the_deadline_defaults_to_500_ms_and_is_read_from_the_environment() -> None:
    assert load_settings(environ={}).dual_write_timeout_ms == 500
    custom = load_settings(environ={"RETRIEVAL_DUAL_WRITE_TIMEOUT_MS": "250"})
    assert custom.dual_write_timeout_ms == 250
    assert custom.as_env()["RETRIEVAL_DUAL_WRITE_TIMEOUT_MS"] == "250"


@pytest.mark.parametrize("bad", ["0", "-5", "fast", "1.5"])
def test_a_bad_deadline_is_refused_naming_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match="RETRIEVAL_DUAL_WRITE_TIMEOUT_MS"):
        load_settings(environ={"RETRIEVAL_DUAL_WRITE_TIMEOUT_MS": bad})
