"""The XLSX download: a workbook Excel and LibreOffice open, written in one streaming pass.

The work is in ``xlsx_writer`` (usable without a stored result); this plugin feeds it the
result's canonical text rows and its scrub note, so the workbook says what was taken out.
"""

from __future__ import annotations

from typing import BinaryIO

from dancecat_core.exporters import Exporter, ExportSummary
from dancecat_core.hookspecs import hookimpl
from dancecat_core.resultstore import StoredResult


class XlsxExporter(Exporter):
    """Numbers, booleans and dates as Excel values; see ``xlsx_writer`` for the limits.

    Cacheable: building a big workbook costs seconds, so it is rendered once per result.
    """

    format = "xlsx"
    label = "Excel (XLSX)"
    media_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    extension = "xlsx"
    cacheable = True

    def export(self, result: StoredResult, sink: BinaryIO) -> ExportSummary:
        # The writer (zipfile, XML escaping, ~10 ms) loads when a workbook is made, not
        # with the plugin, which every console command loads.
        from dancecat_plugins.xlsx_writer import write_xlsx

        notes = [result.meta.scrub_note] if result.meta.scrub_note else []
        return write_xlsx(
            sink,
            result.columns,
            result.text_rows(),
            notes,
            row_count_hint=result.meta.row_count,
            text_bytes_hint=result.store.size(result.key),
        )


@hookimpl
def dancecat_register_exporters() -> list[type[Exporter]]:
    return [XlsxExporter]
