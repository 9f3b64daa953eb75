"""The CSV download: the stored canonical CSV, byte for byte.

DanceCat stores every result as CSV already (see ``dancecat_core.csvcodec``), so this
exporter transforms nothing: it copies the stored bytes to the sink in large chunks. The
file is RFC 4180 CSV in UTF-8 with one header line, except that lines end in LF rather than
CRLF, as PostgreSQL's ``COPY ... CSV`` writes them; every common reader accepts both. NULL
is an empty unquoted field and the empty string is ``""``.
"""

from __future__ import annotations

from typing import BinaryIO

from dancecat_core.exporters import Exporter, ExportSummary
from dancecat_core.hookspecs import hookimpl
from dancecat_core.resultstore import StoredResult

CHUNK_BYTES = 1 << 20


class CsvExporter(Exporter):
    """Serves the canonical bytes; not cacheable, since the cache would be a second copy."""

    format = "csv"
    label = "CSV"
    media_type = "text/csv; charset=utf-8"
    extension = "csv"
    cacheable = False

    def export(self, result: StoredResult, sink: BinaryIO) -> ExportSummary:
        written = 0
        with result.open_raw() as raw:
            while chunk := raw.read(CHUNK_BYTES):
                sink.write(chunk)
                written += len(chunk)
        return ExportSummary(rows=result.meta.row_count, bytes_written=written)


@hookimpl
def dancecat_register_exporters() -> list[type[Exporter]]:
    return [CsvExporter]
