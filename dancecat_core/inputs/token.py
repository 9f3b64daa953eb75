"""An API token as submitted: only its name (the token itself is made, never given)."""

from __future__ import annotations

from typing import Any

import attrs

from dancecat_core.inputs.fields import Input, Kind, spec


@attrs.frozen
class TokenInput(Input):
    name: Any = spec(
        "Token name",
        Kind.TEXT,
        default="token",
        max_length=100,
        flag="--name",
        help="What uses it, e.g. “sales dashboard”.",
    )
