"""The Jobs screen's kept rows (``dancecat_web/ui/fragments.py``): a kept row is drawn
again as soon as anything it shows changes, a page where nothing changed draws no row,
each session's rows carry that session's CSRF token and that user's links, and the
store stays bounded."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import webtest
from sqlalchemy import literal, select, update
from test_web_helpers import make_user, sign_in

from dancecat_core.db import session_scope
from dancecat_core.models import Connection, Job, Notification, Tracker, TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_web.ui.fragments import Fragments


@pytest.fixture
def job_id(app, csrf, sqlite_chinook) -> int:
    app.post(
        "/connections/new",
        {
            "csrf_token": csrf,
            "name": "chinook",
            "driver": "sqlite",
            "read_only": "on",
            "database": str(sqlite_chinook),
        },
        status=303,
    )
    response = app.post(
        "/jobs/new",
        {
            "csrf_token": csrf,
            "name": "artists",
            "annotation": "",
            "connection_id": "1",
            "query": "SELECT ArtistId FROM Artist",
            "timeout_seconds": "",
            "action": "save",
        },
        status=303,
    )
    return int(response.location.rsplit("/", 1)[1])


def _drawn(app: webtest.TestApp) -> int:
    return app.app.registry["dancecat.fragments"].drawn


def _run_row(page: str, tracker_id: int) -> str:
    return re.search(rf'<tr id="tracker-{tracker_id}".*?</tr>', page, re.S).group(0)


def _change(runtime, model, row_id: int, **values) -> None:
    with session_scope(runtime.session_factory) as session:
        session.execute(update(model).where(model.id == row_id).values(**values))


def test_a_kept_row_is_drawn_again_when_anything_it_shows_changes(
    app, runtime, csrf, job_id, queued
):
    app.post(f"/jobs/{job_id}/run", {"csrf_token": csrf}, status=303)
    tracker_id = queued[-1]
    execute_tracker(runtime, tracker_id)
    page = app.get("/jobs").text  # shows (and so clears) the flash messages
    assert "Success" in _run_row(page, tracker_id)
    page = app.get("/jobs").text
    before = _drawn(app)
    assert app.get("/jobs").text == page  # nothing changed: the same page, no row drawn
    assert _drawn(app) == before

    changes = [
        (Tracker, tracker_id, {"row_count": 123456}, "123,456"),
        (Job, job_id, {"name": "renamed <job>"}, "renamed &lt;job&gt;"),
        (Connection, 1, {"name": "other db"}, "DB: other db"),
        (
            Tracker,
            tracker_id,
            {"status": TrackerStatus.FAILED.value, "error": "boom at line 3"},
            "boom at line 3",
        ),
        (Tracker, tracker_id, {"note": "retried once"}, "retried once"),
        (
            Tracker,
            tracker_id,
            {
                "status": TrackerStatus.SUCCESS.value,
                "result_expires_at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
            },
            "Result Expired",
        ),
        (Connection, 1, {"deleted_at": dt.datetime.now(dt.UTC)}, "(deleted)"),
    ]
    for model, row_id, values, shown in changes:
        assert shown not in _run_row(page, tracker_id)
        _change(runtime, model, row_id, **values)
        drawn = _drawn(app)
        page = app.get("/jobs").text
        assert shown in _run_row(page, tracker_id), (values, _run_row(page, tracker_id))
        assert _drawn(app) > drawn

    # A delivery recorded for the run, then its status changing.
    with session_scope(runtime.session_factory) as session:
        session.add(
            Notification(tracker_id=tracker_id, notifier="email", recipient="a@example.com")
        )
    page = app.get("/jobs").text
    assert "a@example.com: pending" in _run_row(page, tracker_id)
    with session_scope(runtime.session_factory) as session:
        notification_id = session.scalar(select(Notification.id))
    _change(runtime, Notification, notification_id, status="sent")
    assert "a@example.com: sent" in _run_row(app.get("/jobs").text, tracker_id)


def test_kept_rows_carry_each_sessions_token_and_each_users_links(
    app, runtime, csrf, job_id, queued
):
    """Bob (an admin who did not write the job) sees Alice's kept run row, with his own
    CSRF token in every form and the Edit link only where he may edit."""
    _change(runtime, Job, job_id, shared=True)
    make_user(runtime, "bob@example.com")
    app.post(f"/jobs/{job_id}/run", {"csrf_token": csrf}, status=303)
    execute_tracker(runtime, queued[-1])
    alice_page = app.get("/jobs").text

    bob = webtest.TestApp(app.app)
    bob_csrf = sign_in(bob, "bob@example.com")
    assert bob_csrf != csrf
    drawn = _drawn(app)
    bob_page = bob.get("/jobs").text
    # His screen and his job row differ (no Edit); the run row is kept.
    assert _drawn(app) == drawn + 2
    assert set(re.findall(r'name="csrf_token" value="([^"]+)"', alice_page)) == {csrf}
    assert set(re.findall(r'name="csrf_token" value="([^"]+)"', bob_page)) == {bob_csrf}
    assert f'href="/jobs/{job_id}/edit"' in alice_page
    assert f'href="/jobs/{job_id}/edit"' not in bob_page
    # Bob's Run button works with the token his row carries.
    bob.post(f"/jobs/{job_id}/run", {"csrf_token": bob_csrf}, status=303)


def test_a_kept_screen_carries_each_sessions_token(app, runtime, alice, csrf, job_id, queued):
    """Alice in a second browser sees the very screen her first one keeps (nothing drawn),
    with the second session's token in every form: the token is put in after the look-up,
    also in the rows drawn inside the screen."""
    app.post(f"/jobs/{job_id}/run", {"csrf_token": csrf}, status=303)
    execute_tracker(runtime, queued[-1])
    app.get("/jobs")  # shows the flash message
    first = app.get("/jobs").text
    other = webtest.TestApp(app.app)
    other_csrf = sign_in(other, alice.email)
    assert other_csrf != csrf
    drawn = _drawn(app)
    second = other.get("/jobs").text
    assert _drawn(app) == drawn  # the whole screen came from the store
    tokens = re.findall(r'name="csrf_token" value="([^"]+)"', second)
    assert len(tokens) == 2 and set(tokens) == {other_csrf}  # sign-out, the job's Run
    assert second.replace(other_csrf, csrf) == first
    assert "dancecat-csrf-token-mark" not in second


def test_the_store_keeps_the_most_recently_used_fragments_up_to_its_size():
    kept = Fragments(size=15)  # characters: three 5-character rows
    for n in range(3):
        kept.put(n, f"row {n}")
    assert kept.get(0) == "row 0"  # now the most recent
    kept.put(3, "row 3")
    assert kept.get(1) is None
    assert [kept.get(n) for n in (0, 2, 3)] == ["row 0", "row 2", "row 3"]
    kept.put(4, "row 4")
    assert sum(kept.get(n) is not None for n in range(5)) == 3
    kept.put(3, "row 3")  # kept again under the same key: counted once
    kept.put(5, "a screen")  # 8 characters: the two least recent rows make room
    assert [n for n in range(6) if kept.get(n) is not None] == [3, 5]
    kept.put(6, "x" * 16)  # bigger than the whole store: not kept, nothing dropped
    assert kept.get(6) is None and kept.get(5) == "a screen"


def test_a_key_holds_every_value_or_the_row_is_not_kept(runtime, job_id):
    """Rows' values (SQLAlchemy rows and named tuples alike), every slot along the bases,
    and nothing that could hide an attribute: an ORM object or an object with a
    ``__dict__`` is refused, so its row is drawn every time."""
    from dancecat_web.ui.fragments import _shape, _Unkeyable

    with session_scope(runtime.session_factory) as session:
        first, second = session.execute(
            select(Job.id, Job.name).union_all(select(literal(2), literal("b")))
        ).all()
        assert _shape([first]) != _shape([second])
        with pytest.raises(_Unkeyable):
            _shape(session.get(Job, job_id))

    class Base:
        __slots__ = ("a",)

        def __init__(self, a, b=None):
            self.a = a

    class Slotted(Base):
        __slots__ = ("b",)

        def __init__(self, a, b):
            super().__init__(a)
            self.b = b

    class Loose(Base):  # no __slots__ of its own: a __dict__
        pass

    # A screen's query values: every item, whatever the order they were given in.
    assert _shape({"job": 1, "status": "Failed"}) == _shape({"status": "Failed", "job": 1})
    assert _shape({"job": 1}) != _shape({"job": 2}) != _shape({"jobs": 2})
    with pytest.raises(_Unkeyable):
        _shape({"job": object()})
    assert _shape(Slotted(1, 2)) != _shape(Slotted(1, 3))  # the subclass's slot counts
    assert _shape(Slotted(1, 2)) != _shape(Slotted(0, 2))  # and the base's
    with pytest.raises(_Unkeyable):
        _shape(Loose(1))


def test_named_tuples_of_declared_plain_fields_are_keyed_as_they_are():
    """The screen's rows are named tuples whose fields are all declared plain: keyed whole
    (hashed and compared in C). One with a field declared as anything else is walked item
    by item like any tuple, so an ORM object in it still refuses the key."""
    from typing import Any, NamedTuple

    from dancecat_core.services import jobs_screen
    from dancecat_web.ui.fragments import _shape, _Unkeyable, _whole

    for kind in (jobs_screen.JobShown, jobs_screen.RunShown, jobs_screen.LatestShown):
        assert _whole(kind), kind

    class Plain(NamedTuple):
        when: dt.datetime | None
        tags: tuple[str, ...]

    class Holding(NamedTuple):
        job: Job

    class Loose(NamedTuple):
        anything: Any

    plain = Plain(None, ("a",))
    assert _shape(plain) is plain
    assert not _whole(Holding) and not _whole(Loose) and not _whole(tuple)
    with pytest.raises(_Unkeyable):
        _shape(Holding(Job(name="x")))
    with pytest.raises(_Unkeyable):
        _shape(Loose(Job(name="x")))
    assert _shape(Loose(3)) == (3,)


def _declared(value, hint) -> bool:
    """Whether ``value`` is of the declared type ``hint`` (the kinds ``_whole`` accepts)."""
    import types
    import typing

    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_declared(value, argument) for argument in arguments)
    if origin is tuple:
        return isinstance(value, tuple) and all(_declared(v, arguments[0]) for v in value)
    if hint is type(None):
        return value is None
    if not isinstance(value, hint):
        return False
    if hasattr(hint, "_fields"):
        hints = typing.get_type_hints(hint)
        return all(_declared(getattr(value, f), hints[f]) for f in hint._fields)
    return True


def test_the_screens_values_are_what_their_fields_declare(runtime, alice, job_id):
    """What lets the screen's named tuples be keyed whole is that each field holds what it
    declares: every field of every value the screen read from the database, checked."""
    from dancecat_core.models import User, utcnow
    from dancecat_core.services import jobs_screen

    now = utcnow()
    with session_scope(runtime.session_factory) as session:
        done = Tracker(
            job_id=job_id,
            status="Success",
            started_at=now,
            finished_at=now,
            duration_ms=5,
            row_count=3,
            result_store="file",
            result_key="k",
            result_expires_at=now + dt.timedelta(hours=1),
        )
        session.add_all([done, Tracker(job_id=job_id, status="Failed", error="boom")])
        session.flush()
        session.add(
            Notification(
                tracker_id=done.id, notifier="email", recipient="ops@example.com", status="sent"
            )
        )
    with session_scope(runtime.session_factory) as session:
        user = session.get(User, alice.id)
        jobs = jobs_screen.jobs_page(session, user, limit=26, offset=0)
        runs = jobs_screen.runs_page(session, user, limit=26)
        latest = jobs_screen.latest_page(session, user, [job.id for job in jobs])
    assert latest[job_id].valid is not None and len(runs) == 2
    assert any(run.notifications for run in runs)
    for value in [*jobs, *runs, *latest.values()]:
        assert _declared(value, type(value)), value


def test_a_value_that_cannot_be_hashed_draws_the_fragment_afresh(app):
    """A named tuple declared plain but holding a list anyway: no key, the fragment is
    drawn every time and the page still answers."""
    from typing import NamedTuple

    from dancecat_web.ui import fragments

    class Odd(NamedTuple):
        items: tuple[str, ...]

    registry = app.app.registry
    store = registry["dancecat.fragments"]
    before = store.drawn
    helpers = type("Helpers", (), {"zone_name": "UTC"})()
    fake = type("Request", (), {"registry": registry, "link_prefix": ""})()
    for _ in range(2):  # a template that draws nothing from an empty list of runs
        fragments.kept(fake, helpers, "_tracker_rows.jinja2", trackers=(), odd=Odd(["a"]))
    assert store.drawn == before + 2
    fragments.kept(fake, helpers, "_tracker_rows.jinja2", trackers=(), odd=Odd(("a",)))
    fragments.kept(fake, helpers, "_tracker_rows.jinja2", trackers=(), odd=Odd(("a",)))
    assert store.drawn == before + 3  # declared and held alike: kept
