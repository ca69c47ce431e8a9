"""Settings that follow an edited env file, without a restart (issue 6, item 6).

`EnvFileSettings` is a `SettingsSource` (`shadowswap.settings.config`). Long-running code (the
router, the service) calls ``.current()`` once per request and uses that frozen `Settings` for the
whole request, so a change applies to new requests only and never half-way through one.

When it looks again
    ``current()`` re-reads the file when ``poll_interval_s`` (1 s by default) has passed on
    the injected clock since the last look; a watcher thread (`start`) does the same in the
    background so an idle process is up to date too; SIGHUP (`install_sighup`, from the main
    thread) makes the next look happen at once. An edit is therefore in effect within about
    one poll interval, well inside the 5 seconds the issue asks for. Only one caller looks at
    a time; the others keep using the settings they have (the request path never waits).
What it logs
    ``settings reloaded`` with the variables that changed (old and new values, rendered by
    `Settings.as_env` with secrets masked) and the phase before and after; ``env file
    invalid, keeping the last good settings`` with the error when the new content does not
    load (a half-written file, a typo); ``env file unreadable`` when it vanished. Each
    problem is logged once per distinct file content, not once per poll.
What wins
    as everywhere (`shadowswap.settings.config`), the process environment wins over the env file: a
    variable set in the environment cannot be changed by editing the file. That is logged as
    a warning at start, naming the variables.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from shadowswap.clock import Clock, SystemClock
from shadowswap.errors import ConfigError
from shadowswap.settings.config import Settings, gather, load_settings, read_env_file
from shadowswap.settings.phase import classify

log = logging.getLogger("shadowswap.rollout.live")


class EnvFileSettings:
    """A `SettingsSource` that re-reads ``env_file`` when it changes.

    >>> source = EnvFileSettings(".env.staging")  # doctest: +SKIP
    >>> source.start(); source.install_sighup()  # doctest: +SKIP
    >>> settings = source.current()  # once per request  # doctest: +SKIP
    """

    def __init__(
        self,
        env_file: str | Path,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        poll_interval_s: float = 1.0,
    ) -> None:
        self._path = Path(env_file)
        self._environ = environ
        self._clock = clock or SystemClock()
        self._interval = poll_interval_s
        self._lock = threading.Lock()
        self._look_now = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous_handler: Any = None
        self._content = self._read()
        self._settings = load_settings(self._path, environ)  # the first load must succeed
        self._last_look = self._clock.monotonic()
        self._reported: bytes | None = None
        self.reloads = 0
        self.last_error: str | None = None
        self._warn_overridden()

    @property
    def path(self) -> Path:
        return self._path

    def current(self) -> Settings:
        """The settings for a new request."""
        due = self._clock.monotonic() - self._last_look >= self._interval
        if due or self._look_now.is_set():
            self.refresh()
        return self._settings

    def refresh(self) -> bool:
        """Look at the file now; True when new settings took effect. Never blocks: if another
        thread is already looking, returns False at once."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._look_now.clear()
            self._last_look = self._clock.monotonic()
            return self._reload()
        finally:
            self._lock.release()

    def _reload(self) -> bool:
        content = self._read()
        if content is None or content == self._content:
            return False
        try:
            new = load_settings(self._path, self._environ)
        except ConfigError as exc:
            self.last_error = str(exc)
            if self._reported != content:
                self._reported = content
                log.error(
                    "env file invalid, keeping the last good settings",
                    extra={"env_file": str(self._path), "error": str(exc)},
                )
            return False
        self._content = content
        self._reported = None
        self.last_error = None
        old, self._settings = self._settings, new
        self.reloads += 1
        self._log_change(old, new)
        return True

    def _read(self) -> bytes | None:
        try:
            return self._path.read_bytes()
        except OSError as exc:
            if self._reported != b"":
                self._reported = b""
                log.warning(
                    "env file unreadable, keeping the last good settings",
                    extra={"env_file": str(self._path), "error": exc.strerror or str(exc)},
                )
            return None

    def _log_change(self, old: Settings, new: Settings) -> None:
        # Compared in clear (a changed password is a change), shown masked.
        raw_before, raw_after = old.as_env(mask=False), new.as_env(mask=False)
        before, after = old.as_env(mask=True), new.as_env(mask=True)
        changed = {k: [before[k], after[k]] for k in raw_after if raw_before[k] != raw_after[k]}
        was, now = classify(old), classify(new)
        log.info(
            "settings reloaded",
            extra={
                "env_file": str(self._path),
                "changed": changed,
                "phase": now.label,
                "previous_phase": was.label,
            },
        )

    def _warn_overridden(self) -> None:
        try:
            in_file = read_env_file(self._path)
            _, sources = gather(self._path, self._environ)
        except ConfigError:  # pragma: no cover - the first load already succeeded
            return
        overridden = sorted(k for k in in_file if sources.get(k) == "environment")
        if overridden:
            log.warning(
                "variables set in the environment win over the env file; editing them there "
                "has no effect",
                extra={"env_file": str(self._path), "variables": overridden},
            )

    # -- background look and SIGHUP ----------------------------------------------------------
    def start(self) -> EnvFileSettings:
        """Look at the file every poll interval from a daemon thread, even with no requests."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._watch, name="shadowswap-env-watch", daemon=True
            )
            self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._look_now.wait(self._interval)
            if self._stop.is_set():
                return
            self.refresh()

    def install_sighup(self) -> bool:
        """Re-read at once on SIGHUP. Only the main thread may install signal handlers;
        elsewhere this logs a warning and returns False."""
        if threading.current_thread() is not threading.main_thread():
            log.warning("SIGHUP handler not installed: not called from the main thread")
            return False
        self._previous_handler = signal.signal(signal.SIGHUP, self._on_sighup)
        return True

    def _on_sighup(self, signum: int, frame: FrameType | None) -> None:
        # A signal handler must not take locks the interrupted code may hold: it only asks
        # for a look, which the watcher thread or the next request performs.
        self._look_now.set()
        previous = self._previous_handler
        if callable(previous):
            previous(signum, frame)

    def close(self) -> None:
        """Stop the watcher thread and restore the previous SIGHUP handler."""
        self._stop.set()
        self._look_now.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._previous_handler is not None and (
            threading.current_thread() is threading.main_thread()
        ):
            signal.signal(signal.SIGHUP, self._previous_handler)
            self._previous_handler = None
