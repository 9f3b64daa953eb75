"""What a notifier plugin provides: telling people that a run finished.

The whole contract is declared here (docs/PLUGINS.md, "Notifiers"): core calls nothing on
a notifier that ``Notifier`` does not define, and reads nothing on a notice that
``RunNotice`` does not.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import attrs

from dancecat_core.errors import ValidationError
from dancecat_core.settings import Settings

# What replaces a secret in a destination as it is stored in the clear and shown.
MASK = "***"
# Where a run's result can be downloaded in a format (the web app's result route).
RESULT_PATH = "/runs/{tracker_id}/result.{fmt}"


def result_link(settings: Settings, tracker_id: int, fmt: str) -> str:
    """The download link of a run's result as ``fmt``."""
    return settings.base_url + RESULT_PATH.format(tracker_id=tracker_id, fmt=fmt)


def result_links(settings: Settings, tracker_id: int, formats: Sequence[str]) -> dict[str, str]:
    """The download link of a run's result in each of ``formats`` (a notifier's
    ``formats``: every registered exporter's, so a plugin's format is linked too)."""
    return {fmt: result_link(settings, tracker_id, fmt) for fmt in formats}


def check_format(fmt: str, formats: Sequence[str]) -> str:
    """``fmt`` (lower case) when it is one of ``formats`` (the registered download formats;
    empty: not known here, so not checked); else ``ValidationError`` saying which are."""
    fmt = fmt.lower()
    if formats and fmt not in formats:
        raise ValidationError(f"format {fmt!r} is not one of {', '.join(formats)}")
    return fmt


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def scheme_of(destination: str) -> str:
    """The scheme of a destination in lower case; ``"mailto"`` for a bare email address
    (no ``scheme:`` before an ``@``)."""
    match = _SCHEME.match(destination.strip())
    if match is None or "@" in match.group(1):
        return "mailto"
    scheme = match.group(1).lower()
    # "ana@example.com" has no scheme; "user:x@host" neither, unless written as a URL.
    if "@" in destination and "//" not in destination and scheme != "mailto":
        return "mailto"
    return scheme


@attrs.frozen
class Destination:
    """A destination as a notifier read it: ``shown`` is stored in the clear and shown
    everywhere (its secrets replaced by ``MASK``); ``secrets`` are stored encrypted and only
    handed to ``deliver`` (key ``"url"``: the full URL, when ``shown`` masks part of it)."""

    shown: str
    secrets: Mapping[str, str] = attrs.field(factory=dict, repr=False)


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
    # The same values by name, as JSON values (``parameters.load_values``).
    parameter_values: Mapping[str, Any] = attrs.field(factory=dict)
    due_at: str | None = None
    # The same on every try of one delivery (a resend after a worker died included), unique
    # per run and destination: receivers drop a duplicate by it.
    delivery_key: str = ""
    # The destination's stored secrets (``Destination.secrets``); never logged.
    secrets: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    # A "Send test": nothing ran; the notice describes a sample run.
    test: bool = False

    @property
    def url(self) -> str:
        """The destination with its secrets: what to connect to."""
        return self.secrets.get("url") or self.recipient


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
    # The URL schemes of the destinations this notifier delivers to (``"mailto"``: also a
    # bare email address). A destination whose scheme two notifiers claim is refused
    # (``destinations.notifier_for``). May be a descriptor read on first use.
    schemes: ClassVar[tuple[str, ...]] = ()
    # Set (e.g. "webhook secret"): each new destination gets a random secret under
    # ``secrets["generated"]``, shown once, as "LABEL for DESTINATION: SECRET".
    generated_secret: ClassVar[str | None] = None

    def __init__(self, settings: Settings, formats: Sequence[str] = ()):
        self.settings = settings
        # The registered download formats (exporters), for a destination naming one.
        self.formats = tuple(formats)

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

    def parse(self, url: str) -> Destination:
        """Check a destination of one of ``schemes`` as typed, and split off its secrets.

        Raises ``ValidationError`` with one line saying what is wrong (no field prefix:
        the caller adds the field's label). Default: taken as typed, nothing secret.
        """
        return Destination(url)

    def recipients_for(self, emails: Sequence[str]) -> list[str]:
        """Whom to tell about a run of a job whose destinations (as shown) are ``emails``
        (in order); an empty list means nobody. Default: those of this notifier's
        ``schemes`` (``scheme_of``)."""
        return [email for email in emails if scheme_of(email) in self.schemes]

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
