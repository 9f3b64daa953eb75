"""Requests in turn (``dancecat_web.turns``): one at a time per process, first come first
served; a turn held past its patience lets the next start; an error or a streamed body
never keeps the turn. Real threads, real clocks."""

from __future__ import annotations

import threading
import time

import pytest

from dancecat_web.turns import Turns, in_turn


class _Seen:
    """Who got the turn, in which order, and how many held one at the time."""

    def __init__(self) -> None:
        self.order: list[int] = []
        self.inside: list[int] = []
        self.most = 0


def _arrive_in_order(turns: Turns, count: int, seen: _Seen) -> list[threading.Thread]:
    """``count`` threads that enter one after another (each waiting in line before the
    next arrives) and note what they saw once they got the turn."""
    threads = []
    for n in range(count):

        def request(n: int = n) -> None:
            ticket = turns.enter()
            seen.inside.append(n)
            seen.order.append(n)
            seen.most = max(seen.most, len(seen.inside))
            time.sleep(0.002)
            seen.inside.remove(n)
            turns.leave(ticket)

        thread = threading.Thread(target=request)
        thread.start()
        deadline = time.monotonic() + 5
        while len(turns._line) < n + 1 and time.monotonic() < deadline:  # in line now
            time.sleep(0.001)
        threads.append(thread)
    return threads


def test_requests_take_turns_in_the_order_they_came():
    turns = Turns(patience=10.0)
    first = turns.enter()
    seen = _Seen()
    threads = _arrive_in_order(turns, 8, seen)
    assert seen.order == []  # all wait while the first holds its turn
    turns.leave(first)
    for thread in threads:
        thread.join(5)
    assert seen.order == list(range(8))
    assert seen.most == 1  # never two at once


def test_a_turn_held_past_its_patience_lets_the_next_start():
    turns = Turns(patience=0.05)
    slow = turns.enter()  # a request waiting on something slow, never leaving here
    got: list[float] = []
    began = time.monotonic()

    def request() -> None:
        ticket = turns.enter()
        got.append(time.monotonic() - began)
        time.sleep(0.2)  # slow too: the next waits for its patience, not for it to end
        turns.leave(ticket)

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    turns.leave(slow)
    assert len(got) == 2
    assert 0.04 <= got[0] < 0.15, got  # after the slow one's patience
    assert 0.09 <= got[1] < 0.2, got  # after the first's patience, before it ended


def test_fast_turns_are_not_overtaken():
    """Patience counts from the start of the newest turn held: a line of quick requests is
    served one at a time however long the line has waited."""
    turns = Turns(patience=0.02)
    held = turns.enter()
    seen = _Seen()
    threads = _arrive_in_order(turns, 6, seen)
    time.sleep(0.01)
    turns.leave(held)
    for thread in threads:
        thread.join(5)
    assert seen.order == list(range(6))
    assert seen.most == 1


def test_an_error_gives_the_turn_back():
    turns = Turns(patience=10.0)

    def broken(environ, start_response):
        raise RuntimeError("boom")

    app = in_turn(broken, turns)
    with pytest.raises(RuntimeError):
        app({}, lambda *a: None)
    assert not turns._held
    turns.leave(turns.enter())  # the next one gets it at once


def test_a_streamed_body_is_sent_after_the_turn():
    turns = Turns(patience=10.0)

    def streaming(environ, start_response):
        start_response("200 OK", [])

        def body():
            yield b"a"
            yield b"b"

        return body()

    body = in_turn(streaming, turns)({}, lambda *a: None)
    ticket = turns.enter()  # while the body is still to be sent, the next request's turn
    assert b"".join(body) == b"ab"
    turns.leave(ticket)
