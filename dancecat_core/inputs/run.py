"""A manual run as asked for: the parameter values it runs with (the job's defaults and
the built-in dates fill the rest)."""

from __future__ import annotations

from typing import Any

import attrs

from dancecat_core.inputs.fields import Input, Kind, spec


@attrs.frozen
class RunInput(Input):
    parameters: Any = spec(
        "Parameter values",
        Kind.VALUES,
        default={},
        widget="values",
        flag="--param",
        placeholder="region=EU",
        help="NAME=VALUE for a declared parameter (or a built-in date, to override it).",
    )
