"""Deprecated: the read router moved to `shadowswap.read` (issue 14); this alias goes in the
next release."""

from shadowswap._moved import alias

__getattr__ = alias("shadowswap.router", "shadowswap.read.router")
