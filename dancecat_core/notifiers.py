"""What a notifier plugin provides: telling people that a run finished."""

from __future__ import annotations

import abc
from typing import ClassVar

import attrs

from dancecat_core.settings import Settings


@attrs.frozen
class RunNotice:
    """Everything a notifier may say about one finished run; errors already scrubbed."""

    tracker_id: int
    job_id: int
    job_name: str
    status: str
    recipient: str
    row_count: int | None
    duration_ms: int | None
    error: str | None
    result_url: str
    scrub_note: str = ""
    finished_at: str | None = None


class Notifier(abc.ABC):
    """A way to deliver ``RunNotice``s; registered by ``dancecat_register_notifiers``.

    ``deliver`` raises on failure; the caller retries with backoff and records each try on
    the notification's own row, so trouble here never touches the run or its result.
    """

    name: ClassVar[str]

    def __init__(self, settings: Settings):
        self.settings = settings

    @abc.abstractmethod
    def deliver(self, notice: RunNotice, attachment: Attachment | None) -> None: ...


@attrs.frozen
class Attachment:
    filename: str
    media_type: str
    data: bytes
