"""Configuration: the runbooks' variables, their defaults, and clear refusals of bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowswap.errors import ConfigError
from shadowswap.settings.config import VARIABLES, load_settings
from shadowswap.settings.masking import mask_secrets
from shadowswap.similarity import Metric

# CONTRACT §1, word for word: variable -> default as an env file would write it.
CONTRACT_DEFAULTS = {
    "RETRIEVAL_BACKEND": "faiss",
    "RETRIEVAL_TARGET_BACKEND": None,
    "FF_RETRIEVAL_SHADOW_READ": "OFF",
    "FF_RETRIEVAL_SHADOW_SAMPLE_RATE": "0.25",
    "RETRIEVAL_TENANT_ALLOWLIST": "",
    "RETRIEVAL_SHADOW_TIMEOUT_MS": "800",
    "FF_RETRIEVAL_DUAL_WRITE": "OFF",
    "RETRIEVAL_DUAL_WRITE_CB_THRESHOLD": "3",
    "RETRIEVAL_DUAL_WRITE_CB_WINDOW_S": "30",
    "RETRIEVAL_DUAL_WRITE_OUTBOX_MAX": "1000",
    "RETRIEVAL_DUAL_WRITE_OUTBOX_TTL_S": "86400",
    "RETRIEVAL_CUTOVER_TENANTS": "",
    "RETRIEVAL_CUTOVER_PERCENT": "0",
    "CHROMA_PATH": "./chroma_db",
    "METRIC_ENV": "local",
    "SHADOW_PIPELINE_VERSION": "dev",
    "RETRIEVAL_FAISS_URL": "./data/faiss",
    "RETRIEVAL_CHROMA_URL": "./chroma_db",
    "RETRIEVAL_DUAL_WRITE_OUTBOX_URL": "./data/outbox.sqlite3",
    "RETRIEVAL_ENV_FILE": None,
    "RETRIEVAL_AUTH": "ON",
    "RETRIEVAL_API_KEYS_FILE": None,
}


def test_defaults_are_the_contracts() -> None:
    env = load_settings(environ={}).as_env()
    for name, default in CONTRACT_DEFAULTS.items():
        assert env[name] == default, name
    for kind in (
        "QDRANT",
        "PGVECTOR",
        "LANCEDB",
        "MILVUS",
        "ELASTIC",
        "OPENSEARCH",
        "WEAVIATE",
        "PINECONE",
    ):
        assert f"RETRIEVAL_{kind}_URL" in env
    assert set(env) == set(VARIABLES)


@pytest.mark.parametrize("word", ["ON", "on", "true", "TRUE", "1", "yes", "Yes"])
def test_booleans_accept_the_contract_words_on(word: str) -> None:
    assert load_settings(environ={"FF_RETRIEVAL_SHADOW_READ": word}).shadow_read is True


@pytest.mark.parametrize("word", ["OFF", "off", "false", "0", "no", "NO"])
def test_booleans_accept_the_contract_words_off(word: str) -> None:
    s = load_settings(environ={"FF_RETRIEVAL_DUAL_WRITE": word, "RETRIEVAL_AUTH": word})
    assert s.dual_write is False and s.auth is False


BAD = [
    ("FF_RETRIEVAL_SHADOW_SAMPLE_RATE", "1.5", "number from 0 to 1"),
    ("FF_RETRIEVAL_SHADOW_SAMPLE_RATE", "-0.1", "number from 0 to 1"),
    ("FF_RETRIEVAL_SHADOW_SAMPLE_RATE", "nan", "number from 0 to 1"),
    ("RETRIEVAL_BACKEND", "mongo", "one of faiss, chroma"),
    ("RETRIEVAL_TARGET_BACKEND", "elasticsearch", "one of faiss"),
    ("RETRIEVAL_SHADOW_TIMEOUT_MS", "-1", "greater than 0"),
    ("RETRIEVAL_SHADOW_TIMEOUT_MS", "0", "greater than 0"),
    ("RETRIEVAL_SHADOW_TIMEOUT_MS", "fast", "whole number"),
    ("FF_RETRIEVAL_SHADOW_READ", "maybe", "ON or OFF"),
    ("RETRIEVAL_DUAL_WRITE_CB_THRESHOLD", "0", "at least 1"),
    ("RETRIEVAL_DUAL_WRITE_CB_WINDOW_S", "-5", "greater than 0"),
    ("RETRIEVAL_DUAL_WRITE_OUTBOX_MAX", "1.5", "whole number"),
    ("RETRIEVAL_DUAL_WRITE_OUTBOX_TTL_S", "0", "greater than 0"),
    ("RETRIEVAL_CUTOVER_PERCENT", "101", "at most 100"),
    ("RETRIEVAL_CUTOVER_TENANTS", "ok,not ok", "not a valid tenant id"),
    ("RETRIEVAL_TENANT_ALLOWLIST", "a;b", "not a valid tenant id"),
    ("METRIC_ENV", "production", "prod, stg, dev, local"),
    ("SHADOW_PIPELINE_VERSION", "v 1", "without spaces"),
    ("RETRIEVAL_METRIC", "manhattan", "cosine, dot, l2"),
]


@pytest.mark.parametrize(("variable", "value", "accepted"), BAD)
def test_bad_values_name_variable_value_and_what_is_accepted(
    variable: str, value: str, accepted: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={variable: value})
    err = info.value
    assert err.variable == variable and err.value == value
    assert variable in str(err) and repr(value) in str(err) and accepted in str(err)
    assert "environment" in str(err)


def test_all_bad_values_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"RETRIEVAL_BACKEND": "mongo", "RETRIEVAL_SHADOW_TIMEOUT_MS": "-1"})
    text = str(info.value)
    assert "RETRIEVAL_BACKEND" in text and "RETRIEVAL_SHADOW_TIMEOUT_MS" in text


def test_target_must_differ_from_primary() -> None:
    with pytest.raises(ConfigError, match="another kind"):
        load_settings(environ={"RETRIEVAL_BACKEND": "chroma", "RETRIEVAL_TARGET_BACKEND": "CHROMA"})


ENV_FILE = """\
# staging retrieval settings
export FF_RETRIEVAL_SHADOW_READ=ON
FF_RETRIEVAL_SHADOW_SAMPLE_RATE="0.10"   # runbook 000 staging
RETRIEVAL_TENANT_ALLOWLIST='tenantA, tenantB'
RETRIEVAL_TARGET_BACKEND=chroma
RETRIEVAL_SHADOW_TIMEOUT_MS=
UNRELATED_VARIABLE=whatever
"""


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / ".env.staging"
    path.write_text(ENV_FILE)
    s = load_settings(path, environ={"FF_RETRIEVAL_SHADOW_SAMPLE_RATE": "0.5"})
    assert s.shadow_read is True
    assert s.shadow_sample_rate == 0.5 and s.shadow_sample_rate_text == "0.5"
    assert s.tenant_allowlist == ("tenantA", "tenantB")
    assert s.target_backend == "chroma"
    assert s.shadow_timeout_ms == 800  # empty means unset
    assert s.env_file == str(path)
    from_env = load_settings(environ={"RETRIEVAL_ENV_FILE": str(path)})
    assert from_env.shadow_sample_rate_text == "0.10"


def test_bad_value_in_env_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.env"
    path.write_text("RETRIEVAL_CUTOVER_PERCENT=150\n")
    with pytest.raises(
        ConfigError, match=r"RETRIEVAL_CUTOVER_PERCENT='150' \(from env file .*bad.env\)"
    ):
        load_settings(path, environ={})


def test_missing_env_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.env", environ={})


def test_chroma_url_follows_chroma_path() -> None:
    assert load_settings(environ={"CHROMA_PATH": "/srv/chroma"}).location("chroma") == "/srv/chroma"
    s = load_settings(
        environ={"CHROMA_PATH": "/srv/chroma", "RETRIEVAL_CHROMA_URL": "http://h:8000"}
    )
    assert s.location("chroma") == "http://h:8000"


def test_settings_are_frozen() -> None:
    s = load_settings(environ={})
    with pytest.raises(ValueError, match="frozen"):
        s.backend = "chroma"  # type: ignore[misc]


def test_metric_and_sample_label() -> None:
    s = load_settings(environ={"RETRIEVAL_METRIC": "L2", "FF_RETRIEVAL_SHADOW_SAMPLE_RATE": "0.10"})
    assert s.metric is Metric.L2
    assert s.shadow_sample_rate_text == "0.10"  # the `sample` label keeps what was written


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/vec", "postgresql://app:***@db:5432/vec"),
        ("https://key123@pinecone.example", "https://***@pinecone.example"),
        ("https://es:9200/?api_key=abc&index=x", "https://es:9200/?api_key=***&index=x"),
        ("./data/faiss", "./data/faiss"),
    ],
)
def test_secrets_are_masked(url: str, shown: str) -> None:
    assert mask_secrets(url) == shown
    env = load_settings(environ={"RETRIEVAL_PGVECTOR_URL": url}).as_env()
    assert env["RETRIEVAL_PGVECTOR_URL"] == shown


def test_every_variable_settings_reads_is_named_once_in_names() -> None:
    from shadowswap.settings import names

    named = {
        value for key, value in vars(names).items() if key.isupper() and isinstance(value, str)
    }
    assert set(VARIABLES) <= named
