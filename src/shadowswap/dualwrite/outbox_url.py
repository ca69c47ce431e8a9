"""The outbox at ``RETRIEVAL_DUAL_WRITE_OUTBOX_URL``: parses the URL and opens the implementation
it names. It lives apart from `shadowswap.dualwrite.outbox` (values and the Protocol) because
it imports the implementations, which import those values: one direction only, no cycle.

A plain path is a SQLite file (``?synchronous=normal|full``); a ``postgresql://`` DSN is the
shared PostgreSQL outbox, whose module (and psycopg, the ``postgres`` extra) is imported only
when such a DSN is configured.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from shadowswap.dualwrite.outbox import Outbox
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.errors import ConfigError, MissingDependency


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def existing_outbox(url: str) -> Outbox | None:
    """`open_outbox` for a command that only looks: None when a SQLite outbox's file does not
    exist yet (nothing was ever queued; none is created). A PostgreSQL outbox is opened."""
    text = url.strip()
    if not is_postgres_url(text) and text and not Path(text.partition("?")[0]).exists():
        return None
    return open_outbox(text)


def open_outbox(url: str) -> Outbox:
    """The outbox at ``RETRIEVAL_DUAL_WRITE_OUTBOX_URL``: a SQLite file (a plain path) or a
    PostgreSQL database (a ``postgresql://`` DSN)."""
    text = url.strip()
    if is_postgres_url(text):
        try:  # psycopg comes with the postgres extra: imported only when it is used
            from shadowswap.dualwrite.postgres_outbox import PostgresOutbox  # noqa: PLC0415
        except ImportError as exc:
            raise MissingDependency("outbox", "postgres", "psycopg") from exc
        return PostgresOutbox(text)
    if "://" in text or not text:
        raise ConfigError(
            "RETRIEVAL_DUAL_WRITE_OUTBOX_URL",
            text,
            "expected a file path (SQLite outbox) or a postgresql:// DSN",
        )
    path, _, query = text.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    level = options.pop("synchronous", "normal").upper()
    if options or level not in ("NORMAL", "FULL"):
        raise ConfigError(
            "RETRIEVAL_DUAL_WRITE_OUTBOX_URL",
            text,
            "the only option of a SQLite outbox is ?synchronous=normal (the default: survives "
            "any process crash) or ?synchronous=full (an fsync per commit: survives a power cut)",
        )
    return SqliteOutbox(path, synchronous="FULL" if level == "FULL" else "NORMAL")
