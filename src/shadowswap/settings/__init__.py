"""Settings: everything read from the environment and env files, in one package.

    names.py     every variable's name, spelled once; other modules import these constants
    config.py    `Settings` (frozen, validated once), `load_settings`, `SettingsSource`
    masking.py   the one masker: which names are secret, how URLs and env lines hide them
    phase.py     which migration phase the flags form (`classify`), a pure read of `Settings`
    live.py      `EnvFileSettings`: settings that follow an edited env file, no restart
    envfile.py   editing an env file in place: comments kept, atomic, locked, ``.bak``

May import: the foundation modules (`shadowswap.errors`, `values`, `similarity`, `clock`,
`fileio`, `locks`, `metrics`). Imported by every layer above; never imports them.

>>> from shadowswap.settings import EnvFileSettings, load_settings  # doctest: +SKIP
"""

from shadowswap.settings.config import (
    KINDS,
    Settings,
    SettingsSource,
    StaticSettings,
    gather,
    load_settings,
    read_env_file,
)
from shadowswap.settings.live import EnvFileSettings
from shadowswap.settings.masking import is_secret_name, mask_line, mask_secrets
from shadowswap.settings.phase import Phase, classify

__all__ = [
    "KINDS",
    "EnvFileSettings",
    "Phase",
    "Settings",
    "SettingsSource",
    "StaticSettings",
    "classify",
    "gather",
    "is_secret_name",
    "load_settings",
    "mask_line",
    "mask_secrets",
    "read_env_file",
]
