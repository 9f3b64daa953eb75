"""The ODS download: an OpenDocument spreadsheet, what LibreOffice opens natively, written
in one streaming pass.

The work is in ``ods_writer`` (usable without a stored result); this plugin feeds it the
result's canonical text rows and its scrub note, so the spreadsheet says what was taken out.
"""

from __future__ import annotations

from typing import BinaryIO

from dancecat_core.exporters import Exporter, ExportSummary
from dancecat_core.hookspecs import hookimpl
from dancecat_core.resultstore import StoredResult
from dancecat_plugins.sheets import ODS_MEDIA_TYPE


class OdsExporter(Exporter):
    """Numbers, booleans, dates and times as spreadsheet values; see ``ods_writer``.

    Cacheable: building a big spreadsheet costs seconds, so it is rendered once per result.
    """

    format = "ods"
    label = "OpenDocument (ODS)"
    media_type = ODS_MEDIA_TYPE
    extension = "ods"
    cacheable = True

    def export(self, result: StoredResult, sink: BinaryIO) -> ExportSummary:
        # The writer (zipfile, XML escaping, ~10 ms) loads when a spreadsheet is made, not
        # with the plugin, which every console command loads.
        from dancecat_plugins.ods_writer import write_ods

        notes = [result.meta.scrub_note] if result.meta.scrub_note else []
        return write_ods(
            sink,
            result.columns,
            result.text_rows(),
            notes,
            row_count_hint=result.meta.row_count,
            text_bytes_hint=result.store.size(result.key),
        )


@hookimpl
def dancecat_register_exporters() -> list[type[Exporter]]:
    return [OdsExporter]
