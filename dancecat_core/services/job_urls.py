"""Pull URLs and trigger URLs: make, list, revoke and rotate them; find one by its token;
a pull's rate limit and log; a trigger's signature and its one run per delivery.

A URL is found by the SHA-256 of its token, an indexed equality in the database: no
comparison of secrets happens in Python, so answer times say nothing about how close a
guess was. A URL acts with its job's owner's rights, checked at every use
(``usable``): a disabled owner, a deleted job or a connection the owner may no longer
use stops every URL of the job at once, and they work again when that is undone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import math
import re
import secrets
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dancecat_core import parameters
from dancecat_core.crypto import hash_token
from dancecat_core.db import session_scope
from dancecat_core.errors import NotFound, ValidationError
from dancecat_core.inputs.job_urls import PullUrlInput, TriggerInput
from dancecat_core.inputs.run import RunInput
from dancecat_core.models import Job, PullUrl, PullUse, Tracker, Trigger, User, utcnow
from dancecat_core.runtime import Runtime
from dancecat_core.services import access
from dancecat_core.services.keyset import Keyset

log = logging.getLogger(__name__)

PULL_PREFIX = "dcp_"
#: The formats a pull URL serves (``/pull/<token>.csv``): the text formats a spreadsheet's
#: ``IMPORTDATA`` or ``curl`` reads. Workbooks (XLSX, ODS) are downloads and attachments,
#: not something a sheet imports by URL. The route, the screens, the API, its OpenAPI
#: schema and the console all read this one list.
PULL_FORMATS = ("csv", "json")
TRIGGER_PREFIX = "dcg_"
# What a token looks like (a prefix and 43 url-safe characters); anything else is not
# looked up at all. The routes use the same pattern.
TOKEN_PATTERN = r"dc[pg]_[A-Za-z0-9_-]{43}"
RATE_WINDOW = dt.timedelta(minutes=1)
SIGNATURE_HEADER = "X-DanceCat-Signature"
MAX_IDEMPOTENCY_KEY = 200
_IDEMPOTENCY_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY}}}")

UrlModel = type[PullUrl] | type[Trigger]


def _new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def usable(job: Job) -> bool:
    """Whether a URL of ``job`` may act now, with its owner's rights: the job is not
    deleted, its owner (if any) is not disabled, and the owner may still use the job's
    connection (it was not un-shared or deleted)."""
    owner = job.owner
    if job.is_deleted or (owner is not None and not owner.is_active):
        return False
    return not job.connection.is_deleted and access.can_see(owner, job.connection)


def _own_job(session: Session, actor: User | None, job_id: int) -> Job:
    """Only who may change a job (its owner, an admin) hands out URLs to it."""
    return access.require_changeable(actor, session.get(Job, job_id), "job")


def _own_url(session: Session, actor: User | None, model: UrlModel, url_id: int, what: str):
    """The URL when ``actor`` may change its job; someone else's answers exactly as an id
    that never existed, so ids leak nothing."""
    url = session.get(model, url_id)
    if url is None:
        raise NotFound(f"{what} not found")
    try:
        _own_job(session, actor, url.job_id)
    except NotFound:
        raise NotFound(f"{what} not found") from None
    return url


def _listed(session: Session, model: UrlModel, job_id: int, page: Keyset | None) -> list:
    query = select(model).where(model.job_id == job_id)
    if page is not None:
        return list(session.scalars(page.apply(query, model.id)))
    return list(session.scalars(query.order_by(model.id.desc())))


def _by_token(session: Session, model: UrlModel, clear: str):
    """The live URL whose token is ``clear`` and whose job may be used, else None."""
    if not re.fullmatch(TOKEN_PATTERN, clear or ""):
        return None
    url = session.scalars(
        select(model).where(model.token_hash == hash_token(clear), model.revoked_at.is_(None))
    ).first()
    if url is None or not usable(url.job):
        return None
    return url


# Pull URLs ------------------------------------------------------------------------------


def create_pull_url(
    session: Session, actor: User | None, job_id: int, data: PullUrlInput
) -> tuple[PullUrl, str]:
    """A new pull URL for the job; its token is returned once and never stored."""
    job = _own_job(session, actor, job_id)
    clear = _new_token(PULL_PREFIX)
    url = PullUrl(
        job_id=job.id,
        name=data.cleaned()["name"],
        token_hash=hash_token(clear),
        prefix=clear[:10],
    )
    session.add(url)
    session.flush()
    return url, clear


def list_pull_urls(
    session: Session, actor: User | None, job_id: int, page: Keyset | None = None
) -> list[PullUrl]:
    """The job's pull URLs, revoked ones too, newest first (all, or one ``page``)."""
    return _listed(session, PullUrl, _own_job(session, actor, job_id).id, page)


def revoke_pull_url(session: Session, actor: User | None, url_id: int) -> PullUrl:
    url = _own_url(session, actor, PullUrl, url_id, "pull URL")
    url.revoked_at = url.revoked_at or utcnow()
    session.flush()
    return url


def rotate_pull_url(session: Session, actor: User | None, url_id: int) -> tuple[PullUrl, str]:
    """Revoke the URL and make a new one with its name: one step, one transaction."""
    old = revoke_pull_url(session, actor, url_id)
    return create_pull_url(session, actor, old.job_id, PullUrlInput(name=old.name))


def pull_url_by_token(session: Session, clear: str) -> PullUrl | None:
    return _by_token(session, PullUrl, clear)


def take_pull(session: Session, url: PullUrl, limit: int) -> int | None:
    """Count one pull against the URL's per-minute ``limit`` and note its use; return
    None when it may go ahead, else the seconds until the window ends.

    Each step is one compare-and-set UPDATE, so concurrent pulls on several web
    processes share one count: a new window is started only by the pull that finds
    the old one over, and a pull is counted only while the count is under the limit.
    """
    now = utcnow()
    ended = now - RATE_WINDOW
    for condition, values in (
        (
            or_(PullUrl.window_started_at.is_(None), PullUrl.window_started_at <= ended),
            {"window_started_at": now, "window_pulls": 1},
        ),
        (
            (PullUrl.window_started_at > ended) & (PullUrl.window_pulls < limit),
            {"window_pulls": PullUrl.window_pulls + 1},
        ),
    ):
        moved = session.execute(
            update(PullUrl)
            .where(PullUrl.id == url.id, condition)
            .values(last_used_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount == 1:
            return None
    started = session.scalar(select(PullUrl.window_started_at).where(PullUrl.id == url.id))
    left = (started + RATE_WINDOW - now).total_seconds() if started else 1
    return max(1, math.ceil(left))


def log_pull(
    session: Session, url: PullUrl, method: str, fmt: str, status: int, tracker_id: int | None
) -> None:
    session.add(
        PullUse(pull_url_id=url.id, method=method, format=fmt, status=status, tracker_id=tracker_id)
    )
    session.flush()


def recent_pulls(session: Session, actor: User | None, url_id: int, limit: int = 50):
    """A URL's newest logged pulls."""
    url = _own_url(session, actor, PullUrl, url_id, "pull URL")
    return list(
        session.scalars(
            select(PullUse)
            .where(PullUse.pull_url_id == url.id)
            .order_by(PullUse.id.desc())
            .limit(limit)
        )
    )


# Triggers -------------------------------------------------------------------------------


def create_trigger(
    runtime: Runtime, session: Session, actor: User | None, job_id: int, data: TriggerInput
) -> tuple[Trigger, str, str | None]:
    """A new trigger URL: (trigger, token, secret or None). Both are shown once; the
    secret is kept encrypted (it must be read back to check signatures)."""
    job = _own_job(session, actor, job_id)
    values = data.cleaned()
    clear = _new_token(TRIGGER_PREFIX)
    secret = secrets.token_hex(32) if values["signed"] else None
    trigger = Trigger(
        job_id=job.id,
        name=values["name"],
        token_hash=hash_token(clear),
        prefix=clear[:10],
        secret_encrypted=runtime.secret_box.encrypt(secret) if secret else None,
    )
    session.add(trigger)
    session.flush()
    return trigger, clear, secret


def list_triggers(
    session: Session, actor: User | None, job_id: int, page: Keyset | None = None
) -> list[Trigger]:
    """The job's trigger URLs, revoked ones too, newest first (all, or one ``page``)."""
    return _listed(session, Trigger, _own_job(session, actor, job_id).id, page)


def revoke_trigger(session: Session, actor: User | None, trigger_id: int) -> Trigger:
    trigger = _own_url(session, actor, Trigger, trigger_id, "trigger")
    trigger.revoked_at = trigger.revoked_at or utcnow()
    session.flush()
    return trigger


def trigger_by_token(session: Session, clear: str) -> Trigger | None:
    return _by_token(session, Trigger, clear)


def signature_ok(runtime: Runtime, trigger: Trigger, body: bytes, header: str | None) -> bool:
    """True for an unsigned trigger, or a ``sha256=<hex HMAC-SHA256 of body>`` header
    made with its secret (compared in constant time)."""
    if trigger.secret_encrypted is None:
        return True
    scheme, _, given = (header or "").strip().partition("=")
    if scheme.lower() != "sha256":
        return False
    secret = runtime.secret_box.decrypt(trigger.secret_encrypted)
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("utf-8"))


def idempotency_key(raw: str | None) -> str | None:
    """The ``Idempotency-Key`` header's value (printable ASCII, at most 200), or None."""
    if raw is None or not raw.strip():
        return None
    key = raw.strip()
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ValidationError(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters",
            "Idempotency-Key",
        )
    return key


def run_values(job: Job, given: dict[str, Any]) -> dict[str, Any]:
    """The parameter values a triggered run gets, each read by the type the job declares
    (``parameters.read_values``): an unknown name or a wrong value is refused, naming it."""
    cleaned = RunInput(parameters=given).cleaned()["parameters"]
    return parameters.read_values(parameters.load(job.parameters_json), cleaned)


def fire(
    runtime: Runtime, trigger_id: int, key: str | None, values: dict[str, Any] | None = None
) -> tuple[int, bool]:
    """Queue one run for a trigger delivery, with ``values`` (``run_values``) for its
    parameters: (tracker id, whether it is new).

    Its own transaction, committed before the caller enqueues. A delivery repeating an
    ``Idempotency-Key`` gets the first delivery's run: ``UNIQUE(trigger_id,
    idempotency_key)`` refuses the second tracker (concurrent deliveries included: the
    database makes the second insert wait for the first and then fail), and the run
    that won is looked up instead.
    """
    try:
        with session_scope(runtime.session_factory) as session:
            trigger = session.get(Trigger, trigger_id)
            tracker = Tracker(
                job_id=trigger.job_id,
                trigger_id=trigger.id,
                idempotency_key=key,
                parameter_values_json=parameters.values_json(values or {}),
            )
            session.add(tracker)
            session.flush()
            session.execute(
                update(Job)
                .where(Job.id == trigger.job_id)
                .values(run_count=Job.run_count + 1, last_run_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            trigger.last_used_at = utcnow()
            return tracker.id, True
    except IntegrityError:
        if key is None:
            raise
    with runtime.session_factory() as session:
        found = session.scalar(
            select(Tracker.id).where(
                Tracker.trigger_id == trigger_id, Tracker.idempotency_key == key
            )
        )
    if found is None:
        raise NotFound("trigger not found")
    return found, False
