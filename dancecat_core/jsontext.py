"""JSON text as DanceCat writes it everywhere: decimals as exact JSON numbers.

JSON numbers have no precision limit, so a decimal is written as a number with every digit
it has (``9.50``, not ``"9.50"`` and not the float ``9.5``); read it with
``json.loads(text, parse_float=decimal.Decimal)`` to keep it exact. That is how the JSON
download writes decimals (``dancecat_plugins.json_exporter``), so a preview and a result
say the same value the same way. A decimal JSON cannot say (NaN, infinities) is ``null``,
also as the download writes it; a float NaN is refused (``allow_nan=False``), so the text
is always JSON: callers make such floats ``None`` first, as ``finite`` does.

The stdlib encoder cannot emit a number it did not make, so each decimal is first written
as a string holding a random marker and its index, and the marked strings are then
swapped for the digits: no text from the data can carry a marker it cannot know.
"""

from __future__ import annotations

import decimal
import json
import math
import re
import secrets
from collections.abc import Callable
from typing import Any


def _exact(value: decimal.Decimal) -> str | None:
    """A finite decimal as JSON number text, every digit kept; None for NaN/Infinity."""
    return format(value, "f") if value.is_finite() else None


def finite(value: float) -> float | None:
    """A float as JSON can hold it: NaN and the infinities become None (``null``)."""
    return value if math.isfinite(value) else None


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None, **options: Any) -> str:
    """``json.dumps`` with exact decimals (module docstring). ``default`` handles the other
    types JSON lacks, as for ``json.dumps``; ``options`` are passed on."""
    marker = secrets.token_hex(12)
    numbers: list[str] = []

    def known(item: Any) -> Any:
        if isinstance(item, decimal.Decimal):
            text = _exact(item)
            if text is None:
                return None
            numbers.append(text)
            return f"{marker}{len(numbers) - 1}"
        if default is None:
            raise TypeError(f"{type(item).__name__} is not JSON serializable")
        return default(item)

    text = json.dumps(value, default=known, allow_nan=False, **options)
    if not numbers:
        return text
    return re.sub(f'"{marker}([0-9]+)"', lambda found: numbers[int(found.group(1))], text)
