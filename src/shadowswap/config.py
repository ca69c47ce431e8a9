"""Deprecated: configuration moved to `shadowswap.settings` (issue 14); this alias goes in the
next release."""

from shadowswap._moved import alias

__getattr__ = alias("shadowswap.config", "shadowswap.settings.config")
