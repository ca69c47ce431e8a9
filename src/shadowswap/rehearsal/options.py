"""What a rehearsal is asked to do (the command line), checked once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shadowswap.errors import InvalidInput
from shadowswap.settings.config import KINDS

DEFAULT_WORKDIR = Path("./data/rehearsal")
DEFAULT_DOCS = 100_000
DEFAULT_QUERIES = 7_000  # at the 0.50 sample: ~3,500 comparisons, above the 2,995 the gate needs
DEFAULT_TENANTS = 5
DEFAULT_SEED = 7


@dataclass(frozen=True)
class RehearsalOptions:
    """The rehearsal's knobs. ``env_file`` points at the user's own stores (their data is
    the data: nothing is loaded); without it the stores are embedded in ``workdir``."""

    primary: str | None = None
    target: str | None = None
    docs: int = DEFAULT_DOCS
    queries: int = DEFAULT_QUERIES
    tenants: int = DEFAULT_TENANTS
    seed: int = DEFAULT_SEED
    workdir: Path = DEFAULT_WORKDIR
    report_dir: Path | None = None
    env_file: Path | None = None
    queries_file: Path | None = None
    write_rate: float = 50.0  # live write calls per second
    outage_s: float = 3.0  # how long the target stays down once the breaker is open
    cutover_reads: int = 300  # reads checked at each cutover step
    sample_rate: str = "0.50"  # FF_RETRIEVAL_SHADOW_SAMPLE_RATE during the shadow step
    cb_window_s: int = 2  # RETRIEVAL_DUAL_WRITE_CB_WINDOW_S
    operator: str = "rehearsal"

    def __post_init__(self) -> None:
        for flag, kind in (("--primary", self.primary), ("--target", self.target)):
            if kind is not None and kind not in KINDS:
                raise InvalidInput(flag, f"{kind!r} is not a backend kind; use one of {KINDS}")
        if self.primary is not None and self.primary == self.target:
            raise InvalidInput("--target", "the target must be another kind than the primary")
        if self.queries_file is not None and self.env_file is None:
            raise InvalidInput(
                "--queries-file",
                "queries are for your own stores: give --env-file too (the default data "
                "brings its own held-out queries)",
            )
        if not 1 <= self.tenants <= 100:
            raise InvalidInput("--tenants", "use from 1 to 100 tenants")
        if self.queries < 1:
            raise InvalidInput("--queries", "use at least 1 query")
        if not self.write_rate > 0:
            raise InvalidInput("write_rate", "must be a positive number of writes per second")
        if not self.outage_s > 0:
            raise InvalidInput("outage_s", "must be a positive number of seconds")

    @property
    def own_stores(self) -> bool:
        return self.env_file is not None
