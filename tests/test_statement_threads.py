"""Statements built once a process and shared by its request threads come out right
whichever threads first build and compile them at once.

Found under load: SQLAlchemy's ORM ``aliased()`` classes can lose their alias when threads
first build and compile statements from them at the same time. One of the first 20
requests of a fresh web process then built ``newest_result_ids``' query with
``trackers.status`` where ``successes.status`` was meant (``FROM trackers AS successes,
trackers``): a cross join with the million-row table, kept for the life of the process;
eight such queries held the database's cores for minutes. The shared statements now use
plain tables (none of them joins a table to itself). Only a process's first use races, so
the check runs in a child interpreter that reloads the modules (fresh statements, fresh
tables' state) round after round, threads switching as often as the interpreter lets them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHECK = textwrap.dedent(
    """
    import importlib, sys, threading, warnings
    from sqlalchemy.dialects import postgresql
    from dancecat_core.services import jobs_screen, trackers

    warnings.simplefilter("ignore")  # the lost alias also warns; the SQL is what counts
    BUILDERS = [
        lambda: trackers._newest_ids_statement(False),
        lambda: jobs_screen._latest_statement(False),
        lambda: jobs_screen._runs_statement(False, True, True, True, 26),
        lambda: jobs_screen._jobs_statement(False, 26, False),
    ]

    def sql(prepared):  # each is a Prepared: the statement its PREPARE is made from
        return str(prepared.statement.compile(dialect=postgresql.dialect()))

    expected = [sql(build()) for build in BUILDERS]
    sys.setswitchinterval(1e-6)
    wrong, made = [], 0
    for _ in range(int(sys.argv[1])):
        importlib.reload(trackers)
        importlib.reload(jobs_screen)
        barrier = threading.Barrier(8)
        found = []

        def first_use():
            barrier.wait()
            try:
                found.append([sql(build()) for build in BUILDERS])
            except Exception as exc:  # a race may also raise: as wrong as wrong SQL
                found.append([f"raised {exc!r}"])

        threads = [threading.Thread(target=first_use) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for each in found:
            made += 1
            wrong += [got for got, want in zip(each, expected) if got != want]
    print(made, len(wrong))
    print(wrong[0] if wrong else "")
    """
)


def test_shared_statements_are_right_whichever_threads_first_use_them():
    done = subprocess.run(
        [sys.executable, "-c", CHECK, "40"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    made, wrong = (int(n) for n in done.stdout.splitlines()[0].split())
    assert made == 8 * 40
    assert wrong == 0, f"{wrong} statements built wrong; first:\n{done.stdout}"
