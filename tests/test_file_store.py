"""The file result store cleans up after a writer killed mid-result.

A worker SIGKILLed while it writes a result leaves its ``.partial-*.tmp`` file behind (no
``abort`` ran). The expiry sweep drops such files once they are older than the longest a
run may write one, and never a file a live run is still writing, a committed result or
anything else in the folder.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

from dancecat_core import migrations
from dancecat_core.models import utcnow
from dancecat_core.runtime import build_runtime
from dancecat_core.services import trackers
from dancecat_core.settings import load_settings

KILLED_WRITER = """
import os, signal, sys
from dancecat_core.runtime import build_runtime
from dancecat_core.settings import load_settings
store = build_runtime(load_settings(environ={"DANCECAT_HOME": sys.argv[1]})).store
writer = store.create("tracker-999")
writer.write(b"id,secret\\n" * 300_000)  # past the 1 MiB buffer: on disk
os.kill(os.getpid(), signal.SIGKILL)
"""


def partials(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".partial-"))


def test_the_sweep_drops_what_a_killed_writer_left_and_nothing_else(tmp_path):
    runtime = build_runtime(load_settings(environ={"DANCECAT_HOME": str(tmp_path)}))
    migrations.upgrade(runtime.engine)
    store = runtime.store
    assert store.name == "file"
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], timeout=60)
    assert killed.returncode == -9
    folder = runtime.settings.result_dir
    [dead] = partials(folder)
    assert (folder / dead).stat().st_size > 0
    kept = store.create("tracker-1")
    kept.write(b"a,b\n1,2\n")
    kept.commit()
    live = store.create("tracker-2")  # a run still writing
    live.write(b"a,b\n")
    (folder / ".partial-notes.txt").write_text("not ours")
    (folder / "notes.tmp").write_text("not ours either")

    settings = runtime.settings
    longest = dt.timedelta(
        seconds=settings.job_worker_execute_timeout + settings.worker_stale_seconds
    )
    # Young: a run might still be writing it.
    trackers.expire_results(runtime, now=utcnow())
    assert dead in partials(folder)
    # Old enough: only the dead writer's file goes; the live one wrote just now.
    old = time.time() - longest.total_seconds() - 60
    os.utime(folder / dead, (old, old))
    trackers.expire_results(runtime, now=utcnow())
    assert dead not in partials(folder)
    assert len(partials(folder)) == 2  # the live writer's and the stranger's
    live.write(b"1,2\n")
    live.commit()
    assert store.open("tracker-2").read() == b"a,b\n1,2\n"
    assert store.open("tracker-1").read() == b"a,b\n1,2\n"
    assert (folder / "notes.tmp").exists() and (folder / ".partial-notes.txt").exists()
    runtime.engine.dispose()


def test_an_old_partial_is_dropped_only_past_the_cutoff(tmp_path):
    runtime = build_runtime(load_settings(environ={"DANCECAT_HOME": str(tmp_path)}))
    writer = runtime.store.create("tracker-5")
    writer.write(b"x")
    folder = runtime.settings.result_dir
    [name] = partials(folder)
    mtime = (folder / name).stat().st_mtime
    at = dt.datetime.fromtimestamp(mtime, dt.UTC)
    assert runtime.store.drop_abandoned(at - dt.timedelta(seconds=1)) == 0
    assert runtime.store.drop_abandoned(at + dt.timedelta(seconds=1)) == 1
    assert partials(folder) == []
    writer.abort()  # the writer finding its file gone is not an error
    runtime.engine.dispose()


def test_the_folder_is_made_private_when_missing_and_kept_when_there(tmp_path):
    from dancecat_plugins.file_store import FileResultStore

    results = tmp_path / "deep" / "results"
    settings = load_settings(
        environ={"DANCECAT_HOME": str(tmp_path / "home"), "DANCECAT_RESULT_DIR": str(results)}
    )
    store = FileResultStore(settings, None)
    for key in ("tracker-1", "tracker-2"):
        writer = store.create(key)
        writer.write(b"a\r\n")
        assert writer.commit() == 3
    assert sorted(p.name for p in results.iterdir()) == ["tracker-1", "tracker-2"]
    assert {oct(p.stat().st_mode & 0o777) for p in (results, results.parent)} == {"0o700"}
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    kept = FileResultStore(
        load_settings(
            environ={"DANCECAT_HOME": str(tmp_path / "home"), "DANCECAT_RESULT_DIR": str(shared)}
        ),
        None,
    )
    kept.create("tracker-3").commit()
    assert oct(shared.stat().st_mode & 0o777) == "0o755"  # an existing folder is left as it is
