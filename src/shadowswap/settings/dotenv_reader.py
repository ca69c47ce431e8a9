"""The one place env-file text becomes values: python-dotenv's parser and its variable
expansion, with its "could not parse" warning said once.

python-dotenv's ``dotenv_values`` logs ``python-dotenv could not parse statement starting at
line N`` on every call, and one command reads the same file several times (the settings, the
editor's snapshot, the check that the edited text reads back), so a rollback printed it eight
times, without saying which file. Here the same two steps ``dotenv_values`` takes
(``parse_stream``, then ``resolve_variables``, checked on python-dotenv 1.2) run without its
warning, and ours is logged once per file and line in a process (logger
``shadowswap.settings``): the file as the operator named it, the line number, what to do. Text
that is not a file's (an edit's result, checked before it is written) is parsed silently: the
file it came from was warned about when it was read.

The once-per-process memory is a module-level set, like the registry of Python's own
``warnings`` module: a warning that repeats on every reload of a long-running service would
be noise, and nothing else depends on it.
"""

from __future__ import annotations

import io
import logging
import os
import threading

from dotenv.main import resolve_variables
from dotenv.parser import parse_stream

log = logging.getLogger("shadowswap.settings")
_warned: set[tuple[str, int]] = set()
_warned_lock = threading.Lock()


def dotenv_text_values(text: str, source: str | None = None) -> dict[str, str]:
    """What python-dotenv reads from ``text`` (variables without a value left out); lines it
    cannot parse are ignored, as it does, and warned about once when ``source`` (the file's
    path as given) names where the text came from."""
    bindings = list(parse_stream(io.StringIO(text, newline="")))
    if source is not None:
        for binding in bindings:
            if binding.error:
                _warn_once(source, binding.original.line)
    raw = [(b.key, b.value) for b in bindings if b.key is not None]
    values = resolve_variables(raw, override=True)
    return {k: v for k, v in values.items() if v is not None}


def _warn_once(source: str, line: int) -> None:
    key = (os.path.realpath(source), line)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(
        f"env file {source}, line {line}: not a KEY=VALUE assignment python-dotenv can parse; "
        "the line is ignored: fix it or comment it out with #",
        extra={"env_file": source, "line": line},
    )
