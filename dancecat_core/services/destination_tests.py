""""Send test": a sample message to a destination now, and what became of it.

The one place the console (``dancecat destination test``), the job page's "Send test"
button and the API (``POST /api/v1/destinations/test``, ``POST
/api/v1/jobs/{id}/destinations/test``) send a test from. A destination given as a job
shows it (masked) is sent with that job's stored secrets; as typed, with its own. Nothing
is stored, and what comes back never holds a secret: the destination in its shown form,
the failure with the destination's secrets masked out. A one-off secret made to sign a
typed webhook's test is only in ``announce``, for the console to print.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping

import attrs
from sqlalchemy.orm import Session

from dancecat_core import destinations
from dancecat_core.error_text import clean_error
from dancecat_core.errors import ValidationError
from dancecat_core.inputs.destination_test import DestinationTestInput
from dancecat_core.models import Job, User
from dancecat_core.notifiers import RunNotice
from dancecat_core.runtime import Runtime
from dancecat_core.services import access
from dancecat_core.services import jobs as job_service

FIELD = "destination"
LABEL = DestinationTestInput.field(FIELD).label
SAMPLE_JOB = "DanceCat test"


@attrs.frozen
class SendOutcome:
    """One destination's test: ``destination`` as shown (secrets masked), whether the
    sample arrived, and if not why (``error``, secrets masked)."""

    destination: str
    sent: bool
    error: str | None = None
    announce: str | None = attrs.field(default=None, repr=False)

    def as_json(self) -> dict[str, object]:
        return {"destination": self.destination, "sent": self.sent, "error": self.error}


def _typed(data: DestinationTestInput, *, required: bool) -> str | None:
    value = data.cleaned(only=[FIELD])[FIELD]
    text = (value or "").strip()
    if not text and required:
        raise ValidationError(f"{LABEL}: give an email address or URL", FIELD)
    return text or None


def send(
    runtime: Runtime,
    typed: str,
    stored: Mapping[str, Mapping[str, str]],
    *,
    job_name: str = SAMPLE_JOB,
) -> SendOutcome:
    """Send the sample to ``typed`` now (with its ``stored`` secrets when given in its
    shown form). A destination that cannot be read is ``ValidationError`` naming the
    field; one that cannot be reached is an outcome with ``sent`` false and why."""
    notifiers = runtime.notifiers
    try:
        [saved] = destinations.resolve(notifiers, [typed], stored)
    except ValidationError as error:
        raise ValidationError(f"{LABEL}: {error}", FIELD) from None
    notifier = destinations.notifier_for(notifiers, saved.shown)
    notice = RunNotice(
        tracker_id=0,
        job_id=0,
        job_name=job_name,
        status="Success",
        recipient=saved.shown,
        row_count=0,
        duration_ms=0,
        error=None,
        finished_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        delivery_key=f"test-{uuid.uuid4().hex}",
        secrets=saved.secrets,
        test=True,
    )
    try:
        prepared, attachment = notifier.prepare(notice, None)
        notifier.deliver(prepared, attachment)
    except Exception as exc:  # any failure to deliver is the test's answer
        hidden = [*notifier.secrets, *saved.secrets.values()]
        text = clean_error(
            f"{type(exc).__name__}: {exc}", secrets=hidden, patterns=runtime.value_patterns
        )
        return SendOutcome(saved.shown, False, text[:2000])
    return SendOutcome(saved.shown, True, announce=saved.announce)


def send_typed(
    runtime: Runtime, data: DestinationTestInput, *, job: Job | None = None
) -> SendOutcome:
    """A destination as typed (the console's and ``POST /api/v1/destinations/test``);
    with ``job``, a masked form is sent with that job's stored secrets."""
    typed = _typed(data, required=True)
    assert typed is not None
    stored = destinations.stored_secrets(runtime.secret_box, job.recipients) if job else {}
    return send(runtime, typed, stored, job_name=job.name if job else SAMPLE_JOB)


def send_to_job(
    runtime: Runtime,
    session: Session,
    actor: User | None,
    job_id: int,
    data: DestinationTestInput,
) -> list[SendOutcome]:
    """The job's saved destinations (or the one named, as the job shows it), each sent a
    sample with its stored secrets. Only whoever may change the job may test it; for
    anyone else the job is not found, like an unknown id."""
    job = access.require_changeable(actor, job_service.get(session, actor, job_id), "job")
    stored = destinations.stored_secrets(runtime.secret_box, job.recipients)
    wanted = _typed(data, required=False)
    if wanted is not None and wanted not in stored:
        raise ValidationError(f"{LABEL}: that destination is not on this job", FIELD)
    chosen = [wanted] if wanted is not None else list(stored)
    return [send(runtime, shown, stored, job_name=job.name) for shown in chosen]
