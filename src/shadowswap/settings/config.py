"""Configuration: the only module that reads environment variables and env files.

Every variable of the runbooks (``../shared/CONTRACT.md`` §1) and our own location variables
is a field of one frozen `Settings` object, built once by `load_settings` and passed down.

Sources, strongest first: the process environment, then the env file (``--env-file`` or
``RETRIEVAL_ENV_FILE``), then the defaults. A variable set to the empty string counts as
unset (so ``RETRIEVAL_CUTOVER_TENANTS=`` means "none"). Booleans accept ``ON/OFF``,
``true/false``, ``1/0``, ``yes/no`` in any case. A bad value raises `ConfigError` naming the
variable, the value, where it came from and what is accepted; the CLI exits with code 2.
Env files are read with python-dotenv: comments, ``export`` prefixes and quotes work.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shadowswap.errors import ConfigError, ConfigErrors
from shadowswap.settings import names
from shadowswap.settings.dotenv_reader import dotenv_text_values
from shadowswap.settings.masking import mask_secrets
from shadowswap.similarity import Metric
from shadowswap.values import TENANT_RE

#: Every backend kind, in the order of CONTRACT §1.
KINDS: tuple[str, ...] = (
    "faiss",
    "chroma",
    "qdrant",
    "pgvector",
    "lancedb",
    "milvus",
    "elastic",
    "opensearch",
    "weaviate",
    "pinecone",
    "memory",
)
METRIC_ENVS = ("prod", "stg", "dev", "local")
_TRUE = {"on", "true", "1", "yes"}
_FALSE = {"off", "false", "0", "no"}


# -- parsers: each raises ValueError with the text of what is accepted --------------------
def _on_off(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected ON or OFF (also true/false, 1/0, yes/no, any case)")


def _rate(value: object) -> str:
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ValueError("expected a number from 0 to 1, such as 0.10")
    return text


def _number(
    low: float, high: float, integer: bool, low_open: bool = False
) -> Callable[[object], Any]:
    what = "a whole number" if integer else "a number"
    bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
    top = "" if math.isinf(high) else f" and at most {high:g}"

    def parse(value: object) -> float | int:
        text = str(value).strip()
        try:
            number: float | int = int(text) if integer else float(text)
        except ValueError:
            raise ValueError(f"expected {what} {bound}{top}") from None
        too_low = number <= low if low_open else number < low
        if not math.isfinite(number) or too_low or number > high:
            raise ValueError(f"expected {what} {bound}{top}")
        return number

    return parse


def _kind(value: object) -> str:
    text = str(value).strip().lower()
    if text not in KINDS:
        raise ValueError("expected one of " + ", ".join(KINDS))
    return text


def _optional_kind(value: object) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    return _kind(value)


def _tenants(value: object) -> tuple[str, ...]:
    if isinstance(value, tuple | list):
        items = [str(v) for v in value]
    else:
        items = [part.strip() for part in str(value).split(",")]
    out: dict[str, None] = {}
    for item in items:
        if not item:
            continue
        if not TENANT_RE.fullmatch(item):
            raise ValueError(
                f"tenant {item!r} is not a valid tenant id; expected a comma-separated list of "
                "ids of 1 to 64 characters from A-Z a-z 0-9 _ -"
            )
        out[item] = None
    return tuple(out)


def _metric(value: object) -> Metric:
    text = str(value).strip().lower()
    try:
        return Metric(text)
    except ValueError:
        raise ValueError("expected one of " + ", ".join(m.value for m in Metric)) from None


def _metric_env(value: object) -> str:
    text = str(value).strip()
    if text not in METRIC_ENVS:
        raise ValueError("expected one of " + ", ".join(METRIC_ENVS))
    return text


def _label(value: object) -> str:
    text = str(value).strip()
    if not text or len(text) > 128 or any(c.isspace() or ord(c) < 32 for c in text):
        raise ValueError("expected a label of 1 to 128 characters without spaces, such as v2.0.0")
    return text


def _text(value: object) -> str:
    return str(value).strip()


def _optional_text(value: object) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


OnOff = Annotated[bool, BeforeValidator(_on_off)]
Text = Annotated[str, BeforeValidator(_text)]
OptionalText = Annotated[str | None, BeforeValidator(_optional_text)]


def _var(alias: str, default: Any) -> Any:
    return Field(default, validation_alias=alias)


class Settings(BaseSettings):
    """The effective configuration; frozen. Build it with `load_settings`."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=True)

    # Backends (runbooks 000, 002)
    backend: Annotated[str, BeforeValidator(_kind)] = _var(names.RETRIEVAL_BACKEND, "faiss")
    target_backend: Annotated[str | None, BeforeValidator(_optional_kind)] = _var(
        names.RETRIEVAL_TARGET_BACKEND, None
    )
    # Shadow read (runbook 000)
    shadow_read: OnOff = _var(names.FF_RETRIEVAL_SHADOW_READ, False)
    shadow_sample_rate_text: Annotated[str, BeforeValidator(_rate)] = _var(
        names.FF_RETRIEVAL_SHADOW_SAMPLE_RATE, "0.25"
    )
    tenant_allowlist: Annotated[tuple[str, ...], BeforeValidator(_tenants)] = _var(
        names.RETRIEVAL_TENANT_ALLOWLIST, ()
    )
    shadow_timeout_ms: Annotated[int, BeforeValidator(_number(0, math.inf, True, True))] = _var(
        names.RETRIEVAL_SHADOW_TIMEOUT_MS, 800
    )
    # Dual write (runbook 000)
    dual_write: OnOff = _var(names.FF_RETRIEVAL_DUAL_WRITE, False)
    cb_threshold: Annotated[int, BeforeValidator(_number(1, math.inf, True))] = _var(
        names.RETRIEVAL_DUAL_WRITE_CB_THRESHOLD, 3
    )
    cb_window_s: Annotated[float, BeforeValidator(_number(0, math.inf, False, True))] = _var(
        names.RETRIEVAL_DUAL_WRITE_CB_WINDOW_S, 30
    )
    outbox_max: Annotated[int, BeforeValidator(_number(1, math.inf, True))] = _var(
        names.RETRIEVAL_DUAL_WRITE_OUTBOX_MAX, 1000
    )
    outbox_ttl_s: Annotated[float, BeforeValidator(_number(0, math.inf, False, True))] = _var(
        names.RETRIEVAL_DUAL_WRITE_OUTBOX_TTL_S, 86400
    )
    # ours (issue 16): the share of the outbox reserved for each tenant (dualwrite/outbox.py)
    outbox_tenant_share: Annotated[float, BeforeValidator(_number(0, 0.5, False))] = _var(
        names.RETRIEVAL_DUAL_WRITE_OUTBOX_TENANT_SHARE, 0.1
    )
    # Cutover (runbook 003)
    cutover_tenants: Annotated[tuple[str, ...], BeforeValidator(_tenants)] = _var(
        names.RETRIEVAL_CUTOVER_TENANTS, ()
    )
    cutover_percent: Annotated[float, BeforeValidator(_number(0, 100, False))] = _var(
        names.RETRIEVAL_CUTOVER_PERCENT, 0
    )
    chroma_path: Text = _var(names.CHROMA_PATH, "./chroma_db")
    # Metric labels (runbook 004)
    metric_env: Annotated[str, BeforeValidator(_metric_env)] = _var(names.METRIC_ENV, "local")
    shadow_pipeline_version: Annotated[str, BeforeValidator(_label)] = _var(
        names.SHADOW_PIPELINE_VERSION, "dev"
    )
    # Locations (ours): a plain path is the embedded engine, a URL or DSN a server
    faiss_url: Text = _var(names.RETRIEVAL_FAISS_URL, "./data/faiss")
    chroma_url: Text = _var(names.RETRIEVAL_CHROMA_URL, "")
    qdrant_url: Text = _var(names.RETRIEVAL_QDRANT_URL, "./data/qdrant")
    pgvector_url: OptionalText = _var(names.RETRIEVAL_PGVECTOR_URL, None)
    lancedb_url: Text = _var(names.RETRIEVAL_LANCEDB_URL, "./data/lancedb")
    milvus_url: Text = _var(names.RETRIEVAL_MILVUS_URL, "./data/milvus.db")
    elastic_url: OptionalText = _var(names.RETRIEVAL_ELASTIC_URL, None)
    opensearch_url: OptionalText = _var(names.RETRIEVAL_OPENSEARCH_URL, None)
    weaviate_url: OptionalText = _var(names.RETRIEVAL_WEAVIATE_URL, None)
    pinecone_url: OptionalText = _var(names.RETRIEVAL_PINECONE_URL, None)
    outbox_url: Text = _var(names.RETRIEVAL_DUAL_WRITE_OUTBOX_URL, "./data/outbox.sqlite3")
    env_file: OptionalText = _var(names.RETRIEVAL_ENV_FILE, None)
    auth: OnOff = _var(names.RETRIEVAL_AUTH, True)
    api_keys_file: OptionalText = _var(names.RETRIEVAL_API_KEYS_FILE, None)
    metric: Annotated[Metric, BeforeValidator(_metric)] = _var(
        names.RETRIEVAL_METRIC, Metric.COSINE
    )
    # Where commands leave state for others to read (last reconcile result, checkpoints)
    state_dir: Text = _var(names.RETRIEVAL_STATE_DIR, "./data/state")
    # Rollout (issue 6): the backend rollbacks return to, and the rollback journal
    legacy_backend: Annotated[str, BeforeValidator(_kind)] = _var(
        names.RETRIEVAL_LEGACY_BACKEND, "faiss"
    )
    rollback_journal: Text = _var(
        names.RETRIEVAL_ROLLBACK_JOURNAL, "artifacts/rollback_drill_log.ndjson"
    )
    # Read path and shadow observations (issue 3, docs/shadow-read.md)
    read_timeout_ms: Annotated[int, BeforeValidator(_number(0, math.inf, True))] = _var(
        names.RETRIEVAL_READ_TIMEOUT_MS, 2000
    )
    observations_dir: OptionalText = _var(names.RETRIEVAL_OBSERVATIONS_DIR, None)
    observations_retention_days: Annotated[int, BeforeValidator(_number(1, math.inf, True))] = _var(
        names.RETRIEVAL_OBSERVATIONS_RETENTION_DAYS, 90
    )
    # Dual write (issue 4, docs/dual-write.md): a background batch slower counts as failed
    dual_write_timeout_ms: Annotated[int, BeforeValidator(_number(0, math.inf, True, True))] = _var(
        names.RETRIEVAL_DUAL_WRITE_TIMEOUT_MS, 500
    )
    # HTTP service (issue 7, docs/service.md): requests with a larger body get 413
    max_body_bytes: Annotated[int, BeforeValidator(_number(1024, 1 << 30, True))] = _var(
        names.RETRIEVAL_MAX_BODY_BYTES, 8 * 1024 * 1024
    )
    # Write slots (issue 16, docs/service.md "Write slots"): at most write_slots writes run at
    # once, at most write_slots_per_tenant of one tenant; a tenant's excess waits in its own
    # queue (at most write_queue_max, for at most write_queue_timeout_ms), then gets 503
    write_slots: Annotated[int, BeforeValidator(_number(1, 1024, True))] = _var(
        names.RETRIEVAL_WRITE_SLOTS, 16
    )
    write_slots_per_tenant: Annotated[int, BeforeValidator(_number(1, 1024, True))] = _var(
        names.RETRIEVAL_WRITE_SLOTS_PER_TENANT, 4
    )
    write_queue_max: Annotated[int, BeforeValidator(_number(0, 10_000, True))] = _var(
        names.RETRIEVAL_WRITE_QUEUE_MAX, 16
    )
    write_queue_timeout_ms: Annotated[int, BeforeValidator(_number(0, 600_000, True))] = _var(
        names.RETRIEVAL_WRITE_QUEUE_TIMEOUT_MS, 10_000
    )
    # Connection timeouts (issue 16, docs/service.md "Connections"): the time a client may
    # take to send a request head, and an idle keep-alive connection is kept open
    http_header_timeout_s: Annotated[float, BeforeValidator(_number(0, 3600, False, True))] = _var(
        names.RETRIEVAL_HTTP_HEADER_TIMEOUT_S, 10
    )
    http_keep_alive_s: Annotated[float, BeforeValidator(_number(0, 3600, False, True))] = _var(
        names.RETRIEVAL_HTTP_KEEP_ALIVE_S, 5
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `load_settings` merges environment and env file itself, so that the environment can
        # be injected in tests and every value's source is known for error messages.
        return (init_settings,)

    @model_validator(mode="before")
    @classmethod
    def _chroma_url_defaults_to_chroma_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get(names.RETRIEVAL_CHROMA_URL):
            data = dict(data)
            data[names.RETRIEVAL_CHROMA_URL] = data.get(names.CHROMA_PATH) or "./chroma_db"
        return data

    @model_validator(mode="after")
    def _tenant_slots_fit(self) -> Settings:
        if self.write_slots_per_tenant > self.write_slots:
            raise ValueError(
                f"RETRIEVAL_WRITE_SLOTS_PER_TENANT ({self.write_slots_per_tenant}) must be at "
                f"most RETRIEVAL_WRITE_SLOTS ({self.write_slots})"
            )
        return self

    @model_validator(mode="after")
    def _target_differs(self) -> Settings:
        if self.target_backend is not None and self.target_backend == self.backend:
            raise ValueError(
                "RETRIEVAL_TARGET_BACKEND must name another kind than RETRIEVAL_BACKEND "
                f"(both are {self.backend!r})"
            )
        return self

    # -- derived values -----------------------------------------------------------------
    @property
    def shadow_sample_rate(self) -> float:
        return float(self.shadow_sample_rate_text)

    def location(self, kind: str) -> str | None:
        """Where backend ``kind`` lives: a path (embedded) or a URL/DSN (server)."""
        if kind == "memory":
            return "memory"
        value = getattr(self, f"{_kind(kind)}_url")
        return value if value else None

    def as_env(self, *, mask: bool = True) -> dict[str, str | None]:
        """One entry per variable, values written as they would be in an env file."""
        out: dict[str, str | None] = {}
        for name, field in type(self).model_fields.items():
            out[str(field.validation_alias)] = _render(getattr(self, name), mask)
        return out


class SettingsSource(Protocol):
    """Where long-running code reads its settings from, once per request: a fixed object, or
    one that follows an env file being edited (rollout)."""

    def current(self) -> Settings: ...


class StaticSettings:
    """A `SettingsSource` that never changes."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def current(self) -> Settings:
        return self._settings


VARIABLES: tuple[str, ...] = tuple(str(f.validation_alias) for f in Settings.model_fields.values())


def _render(value: Any, mask: bool) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, Metric):
        return value.value
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value)
    return mask_secrets(text) if mask else text


def read_env_file(path: str | Path) -> dict[str, str]:
    """The variables an env file sets (comments, ``export`` and quotes understood)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            "--env-file",
            str(path),
            "the file does not exist or is not a regular file; give the path of an env file",
        )
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("--env-file", str(path), f"the file cannot be read ({exc})") from exc
    return dotenv_text_values(text, str(path))


def load_settings(
    env_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings from ``environ`` (default: the process's) and an env file.

    The env file is ``env_file`` when given, else ``RETRIEVAL_ENV_FILE`` from the environment.
    """
    merged, sources = gather(env_file, environ)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise _config_errors(exc, merged, sources) from None


def gather(
    env_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """The raw values that are set, and where each came from (environment or env file)."""
    env = dict(os.environ if environ is None else environ)
    file = env_file or env.get(names.RETRIEVAL_ENV_FILE) or None
    merged: dict[str, str] = {}
    sources: dict[str, str] = {}
    if file:
        for key, value in read_env_file(file).items():
            if key in VARIABLES and value.strip() != "":
                merged[key], sources[key] = value, f"env file {file}"
        merged[names.RETRIEVAL_ENV_FILE] = str(file)
        sources[names.RETRIEVAL_ENV_FILE] = "--env-file" if env_file else "environment"
    for key in VARIABLES:
        raw = env.get(key)
        if raw is not None and raw.strip() != "" and key != names.RETRIEVAL_ENV_FILE:
            merged[key], sources[key] = raw, "environment"
    return merged, sources


_NAMED = {v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}


def _config_errors(
    exc: ValidationError, values: Mapping[str, str], sources: Mapping[str, str]
) -> ConfigError:
    errors: list[ConfigError] = []
    for err in exc.errors():
        loc = err.get("loc") or ()
        ctx = err.get("ctx") or {}
        reason = str(ctx.get("error", err.get("msg", "invalid value")))
        if loc:
            variable = str(loc[0])
            errors.append(
                ConfigError(variable, values.get(variable, ""), reason, sources.get(variable, ""))
            )
        else:  # a rule over several variables: its message starts with the one it blames
            first = reason.split(" ", 1)[0]
            variable = first if first in _NAMED else names.RETRIEVAL_TARGET_BACKEND
            errors.append(
                ConfigError(variable, values.get(variable, ""), reason, sources.get(variable, ""))
            )
    return errors[0] if len(errors) == 1 else ConfigErrors(errors)
