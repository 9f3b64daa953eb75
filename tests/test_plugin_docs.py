"""docs/PLUGINS.md's examples work: every Python block is a plugin module, registered in a
plugin manager beside the built-ins and used through the ``Runtime`` as DanceCat uses it."""

from __future__ import annotations

import datetime as dt
import io
import re
import types
from pathlib import Path

import pytest

from dancecat_core import schedule_kinds
from dancecat_core.columns import Column, ColumnType
from dancecat_core.drivers import ConnectionParams
from dancecat_core.error_text import clean_error
from dancecat_core.errors import QueryError, StoreError
from dancecat_core.plugins import get_plugin_manager
from dancecat_core.resultstore import ResultMeta, StoredResult
from dancecat_core.runtime import build_runtime
from dancecat_core.scrubbing import MASK
from dancecat_core.settings import load_settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "PLUGINS.md"
KINDS = ("Drivers", "Exporters", "Result stores", "Scrubbers", "Settings", "Schedule types")


def examples() -> dict[str, str]:
    """Each section's Python block, by section heading."""
    found: dict[str, str] = {}
    for section in re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.M)[1:]:
        title = section.splitlines()[0].strip()
        blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
        if blocks:
            found[title] = "\n".join(blocks)
    return found


@pytest.fixture
def runtime(tmp_path):
    pm = get_plugin_manager()
    for title, code in examples().items():
        module = types.ModuleType(f"plugins_doc_{title.lower().replace(' ', '_')}")
        exec(compile(code, f"{DOC}:{title}", "exec"), module.__dict__)
        pm.register(module, name=module.__name__)
    settings = load_settings(
        environ={
            "DANCECAT_HOME": str(tmp_path),
            "DANCECAT_RESULT_STORE": "memory",
            "DANCECAT_DIGEST_ROWS": "5",
        },
        specs=(),
    )
    rt = build_runtime(settings, plugin_manager=pm)
    yield rt
    rt.engine.dispose()
    schedule_kinds.load(get_plugin_manager())  # later tests see the installed types only


def test_every_plugin_kind_has_an_example():
    assert set(KINDS) <= set(examples())


def test_every_hook_and_contract_attribute_is_in_the_doc():
    from dancecat_core import drivers, exporters, resultstore, settings

    text = DOC.read_text(encoding="utf-8")
    for cls in (
        drivers.Driver,
        drivers.DriverSession,
        drivers.QueryCursor,
        exporters.Exporter,
        resultstore.ResultStore,
        resultstore.BlobWriter,
        schedule_kinds.ScheduleKind,
    ):
        names = {n for n in vars(cls) if not n.startswith("_")} | set(
            getattr(cls, "__annotations__", {})
        )
        for name in names:
            assert f"`{name}" in text, f"{cls.__name__}.{name}"
    for cls in (
        drivers.ConnectionParams,
        exporters.ExportSummary,
        settings.SettingSpec,
        schedule_kinds.Rule,
    ):
        for field in cls.__attrs_attrs__:
            assert f"`{field.name}" in text, f"{cls.__name__}.{field.name}"


def test_the_driver_example_serves_rows(runtime):
    params = ConnectionParams(driver="counting", database="-")
    with runtime.driver("counting").connect(params, timeout=5) as session:
        cursor = session.open_query("SELECT 4", timeout=5, limit=3)
        assert [c.name for c in cursor.columns] == ["n"]
        assert [row for batch in cursor.batches() for row in batch] == [(1,), (2,), (3,)]
        with pytest.raises(QueryError, match="say SELECT N"):
            session.open_query("DROP TABLE t", timeout=5)


def test_the_store_and_exporter_examples_keep_and_render_a_result(runtime):
    store = runtime.store
    assert store.name == "memory"
    writer = store.create("r1")
    data = b'n,name\n1,"a\tb"\n2,\n'
    writer.write(data)
    assert not store.exists("r1")
    assert writer.commit() == len(data) and store.exists("r1") and store.size("r1") == len(data)
    meta = ResultMeta(
        columns=(Column("n", ColumnType.INTEGER), Column("name", ColumnType.TEXT)), row_count=2
    )
    sink = io.BytesIO()
    summary = runtime.exporter("tsv").export(StoredResult(store, "r1", meta, 1), sink)
    assert (summary.rows, sink.getvalue()) == (2, b"n\tname\n1\ta b\n2\t\n")
    aborted = store.create("r2")
    aborted.write(b"half")
    aborted.abort()
    assert not store.exists("r2")
    store.delete("r1")
    store.delete("r1")
    with pytest.raises(StoreError):
        store.open("r1")


def test_the_scrubber_example_drops_columns_and_masks_values(runtime):
    plan = runtime.scrub_plan(
        [
            Column("pay", source="salaries.amount"),
            Column("who"),
            Column("total", derived_from=("salaries.bonus",)),
        ]
    )
    assert [index for index, _ in plan.removed] == [0, 2]
    assert clean_error("see TKT-0123456789AB", patterns=runtime.value_patterns) == f"see {MASK}"


def test_the_settings_example_is_read(runtime):
    assert runtime.settings.digest_rows == 5


def test_the_schedule_type_example_fires_on_weekdays_only(runtime):
    weekdays = schedule_kinds.get("weekdays")
    assert ("weekdays", "Weekdays") in schedule_kinds.choices()
    # Friday 2030-03-01 07:30 in Paris, through a spring-forward (Sunday 31 March).
    rule = schedule_kinds.Rule(dt.datetime(2030, 3, 1, 7, 30), "Europe/Paris")
    friday = dt.datetime(2030, 3, 29, 6, 0, tzinfo=dt.UTC)
    first = weekdays.next_after(rule, friday)
    assert first == dt.datetime(2030, 3, 29, 6, 30, tzinfo=dt.UTC)  # CET: UTC+1
    monday = dt.datetime(2030, 4, 1, 5, 30, tzinfo=dt.UTC)  # CEST: UTC+2
    assert weekdays.next_after(rule, first) == monday
    assert weekdays.previous_before(rule, monday) == first
    # Never before its start; a period before it all the same.
    start = dt.datetime(2030, 3, 1, 6, 30, tzinfo=dt.UTC)
    assert weekdays.next_after(rule, dt.datetime(2030, 1, 1, tzinfo=dt.UTC)) == start
    assert weekdays.previous_before(rule, start) == dt.datetime(2030, 2, 28, 6, 30, tzinfo=dt.UTC)
