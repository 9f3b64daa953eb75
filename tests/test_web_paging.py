"""Every API list is paged one way (``dancecat_web.api.paging``): newest first, ``limit``
up to 500 (50 by default), a ``next`` link only when more follow, stable while rows are
added; and ``GET /api/v1/runs`` lists the runs of every job one may see."""

from __future__ import annotations

import datetime as dt

from test_web_helpers import make_user

from dancecat_web.api import paging

ARTISTS = "SELECT ArtistId FROM Artist"


def _job(app, member, connection, name: str) -> dict:
    body = {"name": name, "connection_id": connection["id"], "query": ARTISTS}
    return app.post_json("/api/v1/jobs", body, headers=member.auth).json["job"]


def _walk(app, member, url: str, key: str, params: dict) -> tuple[list[int], int]:
    """Every id the list gives, following ``next``; and how many pages it took."""
    seen, pages = [], 0
    answer = app.get(url, params, headers=member.auth).json
    while True:
        pages += 1
        seen += [item["id"] for item in answer[key]]
        if answer["next"] is None:
            assert answer["next_cursor"] is None
            return seen, pages
        answer = app.get(answer["next"], headers=member.auth).json


def test_every_list_pages_newest_first_with_next_only_when_more_follow(app, alice, connection):
    job = _job(app, alice, connection, "job 0")
    for n in range(1, 4):
        _job(app, alice, connection, f"job {n}")
        body = {"name": f"c{n}", "driver": "sqlite", "database": connection["database"]}
        app.post_json("/api/v1/connections", body, headers=alice.auth)
    for n in range(4):
        app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth, status=202)
        app.post_json(f"/api/v1/jobs/{job['id']}/pull-urls", {"name": f"p{n}"}, headers=alice.auth)
        app.post_json(f"/api/v1/jobs/{job['id']}/triggers", {"name": f"t{n}"}, headers=alice.auth)
    lists = {
        "/api/v1/connections": "connections",
        "/api/v1/jobs": "jobs",
        "/api/v1/runs": "runs",
        f"/api/v1/jobs/{job['id']}/runs": "runs",
        f"/api/v1/jobs/{job['id']}/pull-urls": "pull_urls",
        f"/api/v1/jobs/{job['id']}/triggers": "triggers",
    }
    for url, key in lists.items():
        everything = app.get(url, headers=alice.auth).json[key]
        assert len(everything) == 4, url
        ids = [item["id"] for item in everything]
        assert ids == sorted(ids, reverse=True), url
        # An exactly full last page has no next link; a shorter page size pages.
        assert _walk(app, alice, url, key, {"limit": 2}) == (ids, 2), url
        assert _walk(app, alice, url, key, {"limit": 3}) == (ids, 2), url
        first = app.get(url, {"limit": 2}, headers=alice.auth)
        assert first.headers["Link"] == f'<{first.json["next"]}>; rel="next"'
        for bad in ({"limit": "0"}, {"limit": "501"}, {"cursor": "junk"}, {"offset": "2"}):
            error = app.get(url, bad, headers=alice.auth, status=422).json["error"]
            assert error["field"] == next(iter(bad)), (url, bad)


def test_rows_added_while_paging_neither_shift_nor_repeat_a_page(app, alice, connection):
    made = [_job(app, alice, connection, f"job {n}")["id"] for n in range(5)]
    first = app.get("/api/v1/jobs", {"limit": 2}, headers=alice.auth).json
    _job(app, alice, connection, "newer")
    # A run and an edit do not move a job in the API's order either.
    app.post(f"/api/v1/jobs/{made[0]}/runs", headers=alice.auth, status=202)
    app.patch_json(f"/api/v1/jobs/{made[1]}", {"annotation": "edited"}, headers=alice.auth)
    rest, _ = _walk(app, alice, first["next"], "jobs", {})
    assert [job["id"] for job in first["jobs"]] + rest == made[::-1]


def test_default_and_maximum_page_sizes(app, alice, connection, runtime):
    job = _job(app, alice, connection, "busy")
    from dancecat_core.db import session_scope
    from dancecat_core.models import Tracker

    with session_scope(runtime.session_factory) as session:
        session.add_all(Tracker(job_id=job["id"]) for _ in range(paging.MAX_LIMIT + 1))
    url = f"/api/v1/jobs/{job['id']}/runs"
    assert len(app.get(url, headers=alice.auth).json["runs"]) == paging.DEFAULT_LIMIT
    biggest = app.get(url, {"limit": paging.MAX_LIMIT}, headers=alice.auth).json
    assert len(biggest["runs"]) == paging.MAX_LIMIT and biggest["next"] is not None


def test_runs_across_jobs_filter_by_job_status_and_since(app, alice, connection, runtime, queued):
    bob = make_user(runtime, "bob@example.com")
    one, two = (_job(app, alice, connection, name) for name in ("one", "two"))
    app.post(f"/api/v1/jobs/{one['id']}/runs", headers=alice.auth, status=202)
    middle = dt.datetime.now(dt.UTC)
    app.post(f"/api/v1/jobs/{two['id']}/runs", headers=alice.auth, status=202)
    app.post(f"/api/v1/jobs/{one['id']}/runs", headers=alice.auth, status=202)

    def ids(**params) -> list[int]:
        return [
            run["id"] for run in app.get("/api/v1/runs", params, headers=alice.auth).json["runs"]
        ]

    assert ids() == queued[::-1]
    assert ids(job=one["id"]) == [queued[2], queued[0]]
    assert ids(since=middle.isoformat()) == [queued[2], queued[1]]
    assert ids(since=middle.replace(tzinfo=None).isoformat()) == [queued[2], queued[1]]
    assert ids(status="Queued") == queued[::-1] and ids(status="Success") == []
    # Runs of jobs one may not see are not listed, whichever filter names them.
    assert app.get("/api/v1/runs", headers=bob.auth).json["runs"] == []
    assert app.get("/api/v1/runs", {"job": one["id"]}, headers=bob.auth).json["runs"] == []
    for bad in ({"status": "done"}, {"since": "yesterday"}, {"job": "x"}):
        app.get("/api/v1/runs", bad, headers=alice.auth, status=422)
    # The job's last run and last edit are kept apart.
    listed = {job["id"]: job for job in app.get("/api/v1/jobs", headers=alice.auth).json["jobs"]}
    assert listed[one["id"]]["updated_at"] == one["updated_at"]
    assert listed[one["id"]]["last_run_at"] > listed[two["id"]]["last_run_at"] > middle.isoformat()
