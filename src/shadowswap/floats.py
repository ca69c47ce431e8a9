"""Metadata floats as every store keeps them: the nearest double an engine reading JSON numbers
the fast way reads back unchanged.

Why this exists (issue 16, found by ``tests/sync/test_reconcile_property.py``): Chroma
(embedded and server) and Qdrant (Edge, and the server's REST API) receive metadata as JSON and
read numbers with serde_json's default parser, which is not correctly rounded. It takes the
decimal digits of Python's shortest ``repr`` as an integer ``M`` and an exponent ``E``, and
computes ``float(M) * 10**E`` (or ``/ 10**-E``) in double precision with a table of powers of
ten, dividing by ``1e308`` first while ``E < -308``. Two roundings: about one float in ten that
Python computes (``random() * 1000``, a sum of two scores) comes back one or a few units in the
last place (ULP) off, and ``-0.0`` comes back ``0.0`` from Chroma. The content hash of what
such a store returns then differs from the hash of what was written, so reconcile would find
the document stale after every repair, forever.

Decision: normalise, not refuse. A float is replaced by the nearest double ``z`` that this
parser reads back as ``z`` (`stable_float`); ``-0.0`` becomes ``0.0``, as in vectors. Every
other engine stores any double exactly, so ``z`` is held unchanged by every store and has
one content hash everywhere. The change is at most a few ULPs (measured over 300,000 random
doubles: 70 % unchanged, 25 % one ULP, at most 45 ULPs for subnormals and values near the
largest double; a relative change below 1e-14), far below the float32 rounding vectors get.
Refusing instead would reject one computed float in ten, values a user cannot avoid, for a
difference no application can observe. Filters go through the same check (`shadowswap.values.
check_metadata`), so a filter on the value the user wrote matches the value stored.

`engine_read` reproduces that parser; ``tests/test_floats.py`` checks it against the real
Chroma and Qdrant Edge engines bit for bit, so a change of their parser shows there.
"""

from __future__ import annotations

import math

from shadowswap.errors import InvalidInput

#: serde_json's table: 1e0 .. 1e308, each correctly rounded (so are Python's literals)
_POW10 = tuple(float(f"1e{i}") for i in range(309))
#: how far (in ULPs, each side) `stable_float` looks; the farthest measured need is 45
MAX_ULPS = 256


def engine_read(value: float) -> float:
    """What serde_json's default parser makes of ``repr(value)``, the text Python's ``json``
    writes (module docstring). ``value`` must be finite; the answer may be ``inf`` when the
    parser's product overflows (serde then refuses the number)."""
    if value == 0.0:
        return 0.0
    text = repr(abs(value))
    digits, _, exponent = text.partition("e")
    whole, _, fraction = digits.partition(".")
    significand = float(int(whole + fraction))  # rounded to nearest, ties to even: Rust's `as`
    power = (int(exponent) if exponent else 0) - len(fraction)
    result = significand
    while True:
        if abs(power) <= 308:
            result = result * _POW10[power] if power >= 0 else result / _POW10[-power]
            break
        if result == 0.0 or power > 0:  # power > 308 cannot come from a finite repr
            break
        result /= 1e308
        power += 308
    return result if value > 0 else -result


def is_stable(value: float) -> bool:
    """Whether every store keeps ``value`` exactly (and it is not ``-0.0``)."""
    if value == 0.0:
        return math.copysign(1.0, value) > 0
    return engine_read(value) == value


def stable_float(value: float, field_name: str = "value") -> float:
    """The nearest double to ``value`` that every store keeps exactly (module docstring): the
    value itself when it is stable, else the closest stable neighbour, the one nearer zero on
    a tie. Idempotent. ``value`` must be finite; `InvalidInput` (naming ``field_name``) in the
    case no stable double lies within `MAX_ULPS`, which no measured value came near."""
    if is_stable(value):
        return value
    if value == 0.0:
        return 0.0
    down = up = value
    away = math.copysign(math.inf, value)
    for _ in range(MAX_ULPS):
        down = math.nextafter(down, 0.0)
        if is_stable(down):
            return down
        up = math.nextafter(up, away)
        if math.isfinite(up) and is_stable(up):
            return up
    raise InvalidInput(
        field_name,
        "this number cannot be stored exactly by every backend (Chroma and Qdrant read JSON "
        "numbers inexactly); round it to 15 significant digits",
    )
