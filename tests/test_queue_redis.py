"""What a consumer asks of Redis, counted: the due moment of a thousand scheduled runs
(bench, start lateness) is spent in these round trips, so one more fails here.

* huey's scheduler moves due messages onto the queue inside Redis, in eta order;
* a run's message is read (one BRPOP) and nothing else: DanceCat never revokes messages,
  so none is looked up for a revocation;
* the alerts check runs on one consumer per interval.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
import uuid

import pytest

from dancecat_core import tasks
from dancecat_core.settings import load_settings


@pytest.fixture
def redis_queue(tmp_path, redis_url):
    settings = load_settings(
        environ={
            "DANCECAT_HOME": str(tmp_path / "home"),
            "DANCECAT_REDIS_URL": redis_url,
            "DANCECAT_HUEY_NAME": f"test-queue-{uuid.uuid4().hex[:8]}",
        }
    )
    tasks.configure(settings)
    yield tasks.huey
    tasks.huey.flush()
    tasks.configure(None)


def _scheduled(huey, tracker_id: int, eta: dt.datetime) -> None:
    task = tasks.run_job.s(tracker_id)
    task.eta = eta.astimezone(dt.UTC).replace(tzinfo=None)  # huey keeps etas naive UTC
    huey.add_schedule(task)


def test_due_messages_move_onto_the_queue_in_eta_order(redis_queue):
    huey = redis_queue
    now = dt.datetime.now(dt.UTC)
    for tracker_id, seconds in ((3, -1), (1, -30), (9, 3600), (2, -10)):
        _scheduled(huey, tracker_id, now + dt.timedelta(seconds=seconds))
    scheduler = tasks._DancecatScheduler(huey, threading.Event(), 1, False)
    scheduler.loop()
    taken = [huey.dequeue().args[0] for _ in range(huey.storage.queue_size())]
    assert taken == [1, 2, 3], "the earliest due first, the one due in an hour left"
    assert huey.storage.schedule_size() == 1


def test_a_message_costs_one_redis_round_trip(redis_queue, monkeypatch):
    huey = redis_queue
    ran = []
    monkeypatch.setattr(tasks, "get_runtime", lambda: None)
    monkeypatch.setattr(tasks, "execute_tracker", lambda *a, **k: ran.append(a[1]))
    monkeypatch.setattr(tasks, "follow_up", lambda runtime, outcome: "done")
    tasks.enqueue_run(5)
    seen: collections.Counter = collections.Counter()
    conn = huey.storage.conn
    original = conn.execute_command

    def counted(*args, **options):
        seen[str(args[0]).upper()] += 1
        return original(*args, **options)

    monkeypatch.setattr(conn, "execute_command", counted)
    huey.execute(huey.dequeue())
    assert ran == [5]
    assert dict(seen) == {"BRPOP": 1}, "a revocation lookup or flag delete came back"
    with pytest.raises(NotImplementedError):
        tasks.run_job.revoke()


def test_the_alerts_check_runs_once_an_interval_on_redis(redis_queue):
    calls = []
    check = tasks._once_per_queue(f"alerts-{uuid.uuid4().hex[:6]}", 30, lambda: calls.append(1))
    check()
    check()  # another consumer, same interval
    assert calls == [1]
