"""The rehearsal's work directory and its env file.

Layout of the work directory (``./data/rehearsal`` by default, recreated on every run)::

    .shadowswap-rehearsal        marker: only a directory holding it is ever emptied
    rehearsal.env                the env file the ladder edits, as an operator would
    rehearsal.env.bak            written by each --apply move (rollout's rule)
    faiss/, chroma/, ...         the embedded stores (default mode only)
    outbox.sqlite3               the dual-write outbox
    state/reconcile_last.json    the last reconcile, read by the phase moves
    observations/                the shadow observation log (JSON lines)
    rollback_drill_log.ndjson    the journal of every phase move and of the rollback drill
    rehearsal.log                shadowswap's own JSON log lines during the run
    rehearsal.json, .html        the reports (unless --report-dir says elsewhere)

Default mode puts everything in the env file, store locations included, so that after the
run ``shadowswap phase status --env-file data/rehearsal/rehearsal.env`` (or ``reconcile``)
looks at the very same stores. Against the user's own stores the env file holds the rollout
variables and the work paths only: the stores' locations (and any secret in them) stay in
memory, passed as the environment of the settings source, never written to disk.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shadowswap.errors import InvalidInput, WriteError
from shadowswap.settings import names

MARKER = ".shadowswap-rehearsal"
ENV_NAME = "rehearsal.env"
#: Kinds with an embedded engine on local disk (or in memory), usable without --env-file.
EMBEDDED = {
    "faiss": "faiss",
    "chroma": "chroma",
    "lancedb": "lancedb",
    "qdrant": "qdrant",
    "milvus": "milvus.db",
    "memory": "",
}


@dataclass(frozen=True)
class Workspace:
    """Paths of one rehearsal."""

    root: Path
    report_dir: Path

    @property
    def env_file(self) -> Path:
        return self.root / ENV_NAME

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def observations_dir(self) -> Path:
        return self.root / "observations"

    @property
    def journal(self) -> Path:
        return self.root / "rollback_drill_log.ndjson"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox.sqlite3"

    @property
    def log_file(self) -> Path:
        return self.root / "rehearsal.log"

    @property
    def json_report(self) -> Path:
        return self.report_dir / "rehearsal.json"

    @property
    def html_report(self) -> Path:
        return self.report_dir / "rehearsal.html"

    def store_location(self, kind: str) -> str:
        return str(self.root / EMBEDDED[kind]) if EMBEDDED.get(kind) else "memory"


def prepare(root: Path, report_dir: Path | None = None) -> Workspace:
    """Create ``root`` afresh. A directory that exists is emptied only when it holds the
    marker (a previous rehearsal) or nothing at all; anything else is refused."""
    if root.exists() and not root.is_dir():
        raise InvalidInput("--workdir", f"{root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()):
        if not (root / MARKER).is_file():
            raise InvalidInput(
                "--workdir",
                f"{root} is not empty and was not made by shadowswap rehearse (no {MARKER}); "
                "choose another directory or empty it",
            )
        try:
            shutil.rmtree(root)
        except OSError as exc:
            raise WriteError(str(root), f"cannot remove the previous rehearsal: {exc}") from exc
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / MARKER).write_text("made by shadowswap rehearse; removed by the next run\n")
        reports = report_dir or root
        reports.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(str(root), str(exc)) from exc
    return Workspace(root, reports)


def env_text(
    ws: Workspace,
    primary: str,
    target: str,
    *,
    own_stores: bool,
    sample_rate: str,
    cb_window_s: int,
) -> str:
    """The env file at the start of the ladder: phase ``legacy``."""
    lines = [
        "# shadowswap rehearse: the rehearsal's env file. The ladder edits it the way an",
        "# operator would (phase moves, rollback); the running pieces follow it without restart.",
        f"RETRIEVAL_BACKEND={primary}",
        f"RETRIEVAL_TARGET_BACKEND={target}",
        f"RETRIEVAL_LEGACY_BACKEND={primary}",
        "FF_RETRIEVAL_DUAL_WRITE=OFF",
        "FF_RETRIEVAL_SHADOW_READ=OFF",
        f"FF_RETRIEVAL_SHADOW_SAMPLE_RATE={sample_rate}",
        "RETRIEVAL_TENANT_ALLOWLIST=",
        "RETRIEVAL_CUTOVER_TENANTS=",
        "RETRIEVAL_CUTOVER_PERCENT=0",
        "",
        "# A short breaker window, so the outage shows open -> half_open -> closed in seconds,",
        "# and an outbox large enough for the whole outage.",
        "RETRIEVAL_DUAL_WRITE_CB_THRESHOLD=3",
        f"RETRIEVAL_DUAL_WRITE_CB_WINDOW_S={cb_window_s}",
        "RETRIEVAL_DUAL_WRITE_OUTBOX_MAX=50000",
        f"RETRIEVAL_DUAL_WRITE_OUTBOX_URL={ws.outbox}",
        "",
        "# Where the rehearsal keeps its state, observations and journal.",
        f"RETRIEVAL_STATE_DIR={ws.state_dir}",
        f"RETRIEVAL_OBSERVATIONS_DIR={ws.observations_dir}",
        f"RETRIEVAL_ROLLBACK_JOURNAL={ws.journal}",
        "SHADOW_PIPELINE_VERSION=rehearsal",
    ]
    if not own_stores:
        lines += ["", "# The embedded stores of the rehearsal."]
        for kind in dict.fromkeys((primary, target)):
            if EMBEDDED.get(kind):
                lines.append(f"RETRIEVAL_{kind.upper()}_URL={ws.store_location(kind)}")
    return "\n".join(lines) + "\n"


def write_env(ws: Workspace, text: str) -> Path:
    try:
        ws.env_file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise WriteError(str(ws.env_file), str(exc)) from exc
    return ws.env_file


def own_store_environ(values: Mapping[str, str | None], written: str) -> dict[str, str]:
    """The user's settings minus every variable the rehearsal's env file sets: passed as the
    settings source's environment (which wins over the file), so the variables the ladder
    edits must not be in it."""
    ours = {
        line.split("=", 1)[0]
        for line in written.splitlines()
        if line and not line.startswith("#") and "=" in line
    }
    ours.add(names.RETRIEVAL_ENV_FILE)
    return {k: v for k, v in values.items() if v is not None and v != "" and k not in ours}
