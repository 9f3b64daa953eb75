"""What a notifier plugin provides: telling people that a run finished.

The whole contract is declared here (docs/PLUGINS.md, "Notifiers"): core calls nothing on
a notifier that ``Notifier`` does not define, and reads nothing on a notice that
``RunNotice`` does not.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import attrs

from dancecat_core.settings import Settings


@attrs.frozen
class Templates:
    """A job's message templates as saved (None or empty: the default); rendered by
    ``dancecat_core.messages.render``."""

    subject: str | None = None
    body: str | None = None
    filename: str | None = None


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
    scrub_note: str = ""
    finished_at: str | None = None
    # The job's message templates and the names they may use (``dancecat_core.messages``):
    # a notifier renders them with ``messages.render``, adding what only it knows (links,
    # its attachment's name), and returns the notice with ``notes`` saying what fell back.
    templates: Templates = attrs.field(factory=Templates)
    context: Mapping[str, Any] = attrs.field(factory=dict)
    notes: tuple[str, ...] = ()
    # The parameter values the run used, in one line (``parameters.summary``); "" if none.
    parameters: str = ""


@attrs.frozen
class Attachment:
    filename: str
    media_type: str
    data: bytes


class ResultFile(Protocol):
    """A run's result rendered in one format, ready to stream (``services.trackers.Download``)."""

    filename: str
    media_type: str
    size: int | None  # None: not known before streaming it
    chunks: Iterator[bytes]  # a generator: ``close()`` it when stopping early


# ``export(fmt)``: the finished run's result as ``fmt`` ("csv", "xlsx", ... any registered
# exporter); raises ``DancecatError`` saying why when there is none to give.
Export = Callable[[str], ResultFile]


@attrs.frozen
class AlertNotice:
    """A streak of trouble with a job opened (``event`` "opened") or ended ("closed"),
    for the job's owner and the admins who opted in (``recipients``); see
    ``dancecat_core.alerts``."""

    alert_id: int
    job_id: int
    job_name: str
    kind: str  # ``AlertKind``: failing, stale
    event: str
    reason: str
    recipients: tuple[str, ...]
    job_url: str
    tracker_id: int | None = None


class Notifier(abc.ABC):
    """A way to deliver ``RunNotice``s; registered by ``dancecat_register_notifiers``.

    For each finished run (Success or Failed), core asks every notifier whom to tell
    (``recipients_for``), keeps one notification row per recipient, and delivers each in
    its own attempt: ``prepare`` then ``deliver``. ``deliver`` raises on failure; the caller
    retries with backoff and records each try on the notification's own row, so trouble
    here never touches the run or its result.
    """

    # The registry key and the ``notifier`` column of its notification rows.
    name: ClassVar[str]
    # True for a notifier that also carries alerts to a job's owner (``deliver_alert``).
    carries_alerts: ClassVar[bool] = False

    def __init__(self, settings: Settings):
        self.settings = settings

    @property
    def configured(self) -> bool:
        """False when this notifier cannot send with the current settings: its
        notifications are recorded as failed at once with ``unconfigured_reason``, and
        the job screens show that reason."""
        return True

    @property
    def unconfigured_reason(self) -> str:
        """One line, fit to show a user, saying what setting is missing."""
        return f"the {self.name} notifier is not configured"

    @property
    def secrets(self) -> Sequence[str]:
        """Texts (passwords, tokens) masked out of this notifier's error messages."""
        return ()

    def recipients_for(self, emails: Sequence[str]) -> list[str]:
        """Whom to tell about a run of a job whose recipients are ``emails`` (in order);
        an empty list means nobody. Default: every job recipient."""
        return list(emails)

    def prepare(
        self, notice: RunNotice, export: Export | None
    ) -> tuple[RunNotice, Attachment | None]:
        """The notice (possibly a subclass carrying this notifier's own fields) and the
        attachment to deliver; ``export`` reads the result, None when the run failed.
        Default: the notice as it is, no attachment."""
        return notice, None

    @abc.abstractmethod
    def deliver(self, notice: RunNotice, attachment: Attachment | None) -> None:
        """Send ``notice`` (as ``prepare`` returned it) to ``notice.recipient``."""

    def deliver_alert(self, notice: AlertNotice) -> None:
        """Send an owner alert to all of ``notice.recipients``; raise on failure (it is
        tried again on the scheduler's next pass). Only called when ``carries_alerts``."""
        raise NotImplementedError(f"the {self.name} notifier does not carry alerts")
