"""Deprecated: the fault-injecting stores moved to `shadowswap.testing` (issue 14); this alias
goes in the next release."""

from shadowswap._moved import alias

__getattr__ = alias("shadowswap.faults", "shadowswap.testing.faults")
