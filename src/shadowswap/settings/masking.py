"""The one masker: what counts as a secret, and how a value or an env-file line hides it.

Used wherever settings are shown (``shadowswap config``, the service's start line, reload logs,
env-file diffs, journals). A name is secret when it contains one of `SECRET_WORDS`, in any case
(``RETRIEVAL_API_KEY``, ``db_password``, ``?access_token=``); a URL keeps its user and hides its
password.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_WORDS = ("key", "token", "secret", "pass", "auth")


def is_secret_name(name: str) -> bool:
    """Whether a variable or query-parameter name holds a secret (``PASSWD``, ``api_key``)."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def mask_secrets(text: str) -> str:
    """Hide a password in a URL's userinfo and secret-looking query parameters."""
    if "://" not in text:
        return text
    parts = urlsplit(text)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"***@{host}"
    query = urlencode(
        [
            (k, "***" if is_secret_name(k) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_value(name: str, value: str) -> str:
    """``value`` of the variable ``name`` as it may be shown: ``***`` for a secret name (an
    empty value stays empty), else with any URL password hidden (the rule of `mask_line`)."""
    if is_secret_name(name) and value.strip():
        return "***"
    return mask_secrets(value)


def mask_line(line: str) -> str:
    """An env-file line with a secret value hidden (by variable name or URL password)."""
    match = re.match(r"(\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*)(.*)", line, re.DOTALL)
    if not match:
        return line
    prefix, key, value = match.groups()
    body = value.rstrip("\r\n")
    quote = body[:1] if body[:1] in ("'", '"') and body.endswith(body[:1]) else ""
    inner = body[1:-1] if quote else body
    if is_secret_name(key) and inner.strip():
        return f"{prefix}{quote}***{quote}\n"
    if "://" in inner:
        return f"{prefix}{quote}{mask_secrets(inner)}{quote}\n"
    return line
