"""A "Send test" as submitted: which destination to send a sample message to.

One declaration for the API body (``POST /api/v1/destinations/test`` and
``/api/v1/jobs/{id}/destinations/test``), the OpenAPI schema and the console's
``dancecat destination test URL``.
"""

from __future__ import annotations

from typing import Any

import attrs

from dancecat_core import destinations
from dancecat_core.inputs.fields import Input, Kind, spec


@attrs.frozen
class DestinationTestInput(Input):
    destination: Any = spec(
        "Destination",
        Kind.TEXT,
        nullable=True,
        max_length=destinations.MAX_LENGTH,
        flag="url",
        help="An email address or URL as typed (its secrets included), or as a job shows it "
        "(masked) to use that job's stored secrets. For a job's test, empty: every "
        "destination of the job.",
    )
