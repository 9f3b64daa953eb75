"""Pull URLs and trigger URLs as submitted: a name, and for a trigger whether it is signed.

The token (and a trigger's secret) is made by DanceCat, never given.
"""

from __future__ import annotations

from typing import Any

import attrs

from dancecat_core.inputs.fields import Input, Kind, spec


@attrs.frozen
class PullUrlInput(Input):
    name: Any = spec(
        "URL name",
        Kind.TEXT,
        default="pull URL",
        max_length=100,
        flag="--name",
        help="Who reads it, e.g. “finance sheet”.",
    )


@attrs.frozen
class TriggerInput(Input):
    name: Any = spec(
        "Trigger name",
        Kind.TEXT,
        default="trigger",
        max_length=100,
        flag="--name",
        help="What calls it, e.g. “ETL done”.",
    )
    signed: Any = spec(
        "Require a signature",
        Kind.BOOLEAN,
        default=False,
        widget="checkbox",
        flag="--signed",
        help="A secret is made and shown once; callers send X-DanceCat-Signature.",
    )
