"""What an exporter plugin provides: a format that streams a stored result to a file."""

from __future__ import annotations

import abc
from typing import BinaryIO, ClassVar

import attrs

from dancecat_core.resultstore import StoredResult


@attrs.frozen
class ExportSummary:
    """What an export wrote, and anything it had to change to fit the format."""

    rows: int
    bytes_written: int | None = None
    warnings: tuple[str, ...] = ()


class Exporter(abc.ABC):
    """A download format; registered by ``dancecat_register_exporters``.

    ``format`` is the name in URLs (``result.csv``) and on the console (``--format csv``).
    A ``cacheable`` exporter's output is rendered once per result and kept in the result
    store beside it until the result expires.
    """

    format: ClassVar[str]
    label: ClassVar[str]
    media_type: ClassVar[str]
    extension: ClassVar[str]
    cacheable: ClassVar[bool] = True

    @abc.abstractmethod
    def export(self, result: StoredResult, sink: BinaryIO) -> ExportSummary:
        """Write ``result`` to ``sink`` without holding it whole in memory.

        Use only ``sink.write``: the sink may be a result-store writer (cached renders) or a
        socket-backed stream, neither of which can seek or tell.
        """
