"""A job's destinations: read by the notifier of their scheme, secrets encrypted at rest.

A destination is one entry of a job's recipient list: a bare email address (mail) or a URL
whose scheme one notifier plugin claims (``Notifier.schemes``). Saved, it is two things:

* the shown form, its secrets replaced by ``MASK``: stored in the clear, listed by the
  screens, the API and the console, and the recipient of its notification rows;
* its secrets (the full URL, a generated signing secret): a JSON object Fernet-encrypted
  under ``ENCRYPTION_KEYS`` like connection passwords, decrypted only to deliver.

An edit that gives a destination back in its shown form keeps the stored secrets; typing
the full URL again replaces them. A masked form that matches no stored destination is
refused (the secret must be typed), so a secret is never moved to another target.
"""

from __future__ import annotations

import json
import secrets
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from dancecat_core.crypto import SecretBox
from dancecat_core.errors import PluginError, ValidationError
from dancecat_core.notifiers import MASK, Destination, Notifier, scheme_of

if TYPE_CHECKING:
    from dancecat_core.models import JobRecipient

# Key of a secret generated for a destination (``Notifier.generated_secret``).
GENERATED = "generated"
MAX_LENGTH = 600


def notifier_for(notifiers: Mapping[str, Notifier], destination: str) -> Notifier:
    """The notifier claiming ``destination``'s scheme, or ``ValidationError`` naming the
    schemes there are (never quoting the destination: it may hold a secret)."""
    scheme = scheme_of(destination)
    claiming = [notifier for notifier in notifiers.values() if scheme in notifier.schemes]
    if len(claiming) > 1:
        # Checked here, not when plugins load: a notifier may read its schemes lazily
        # (the chat notifier's come from apprise, costly to import).
        first, second = sorted(notifier.name for notifier in claiming)[:2]
        raise PluginError(f"notifiers {first!r} and {second!r} both claim {scheme}: destinations")
    if claiming:
        return claiming[0]
    known = sorted({s for n in notifiers.values() for s in n.schemes}, key=_common_first)
    shown = ", ".join(f"{s}:" for s in known[:KNOWN_SHOWN])
    more = f" and {len(known) - KNOWN_SHOWN} more" if len(known) > KNOWN_SHOWN else ""
    raise ValidationError(f"no destination type for {scheme}: (known: {shown}{more})")


# The schemes an error line names first (then alphabetical).
COMMON = ("mailto", "https", "http", "file", "slack", "workflows", "discord", "mmost", "tgram")
KNOWN_SHOWN = 12


def _common_first(scheme: str) -> tuple[int, str]:
    return (COMMON.index(scheme) if scheme in COMMON else len(COMMON), scheme)


def shorten(text: str, limit: int = 80) -> str:
    """A shown form (secrets masked) cut for an error line."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check(notifiers: Mapping[str, Notifier], typed: str) -> str:
    """One typed destination checked as far as it can be without the stored ones: its
    scheme is claimed and, unless it is a shown (masked) form, its notifier accepts it.
    Returns it in its normal form when it holds no secret (an email address in lower
    case), else as typed, stripped: its secrets are split off when it is saved."""
    text = typed.strip()
    if not text:
        raise ValidationError("an empty entry")
    if len(text) > MAX_LENGTH:
        raise ValidationError(f"an entry longer than {MAX_LENGTH} characters")
    notifier = notifier_for(notifiers, text)
    if MASK in text:
        return text
    parsed = notifier.parse(text)
    return text if parsed.secrets else parsed.shown


@attrs.frozen
class Saved:
    """A destination ready to store; ``announce`` is the one-time line showing a secret
    generated for it ("webhook secret for URL: SECRET"), None when none was made."""

    shown: str
    secrets: Mapping[str, str] = attrs.field(repr=False)
    announce: str | None = attrs.field(default=None, repr=False)


def resolve(
    notifiers: Mapping[str, Notifier],
    typed: Sequence[str],
    stored: Mapping[str, Mapping[str, str]],
) -> list[Saved]:
    """The destinations to store for the ``typed`` list, given the ``stored`` secrets by
    shown form. Raises ``ValidationError`` (one line) for a masked form nothing stored
    matches, or two destinations that read the same once masked."""
    saved: list[Saved] = []
    for text in typed:
        text = text.strip()
        notifier = notifier_for(notifiers, text)
        if text in stored:
            destination = Destination(text, stored[text])
        elif MASK in text:
            host = urllib.parse.urlsplit(text).hostname or scheme_of(text)
            raise ValidationError(
                f"the destination on {host} has a masked secret ({MASK}) but is not one "
                "this job has stored; type the whole URL again"
            )
        else:
            parsed = notifier.parse(text)
            kept = stored.get(parsed.shown, {})
            destination = Destination(parsed.shown, {**kept, **parsed.secrets})
        if any(item.shown == destination.shown for item in saved):
            if text in stored or text == destination.shown:
                continue  # the same destination listed twice: keep one
            raise ValidationError(
                f"{shorten(destination.shown)} is listed twice (the entries differ only in "
                "their secrets)"
            )
        saved.append(_with_generated(notifier, destination))
    return saved


def _with_generated(notifier: Notifier, destination: Destination) -> Saved:
    label = notifier.generated_secret
    if label is None or GENERATED in destination.secrets:
        return Saved(destination.shown, dict(destination.secrets))
    value = secrets.token_urlsafe(32)
    return Saved(
        destination.shown,
        {**destination.secrets, GENERATED: value},
        announce=f"{label} for {destination.shown}: {value}",
    )


def seal(box: SecretBox, values: Mapping[str, str]) -> str | None:
    """``values`` encrypted for the ``secrets_encrypted`` column; None when empty."""
    return box.encrypt(json.dumps(dict(values), sort_keys=True)) if values else None


def unseal(box: SecretBox, token: str | None) -> dict[str, str]:
    return json.loads(box.decrypt(token)) if token else {}


def stored_secrets(
    box: SecretBox, recipients: Sequence[JobRecipient]
) -> dict[str, dict[str, str]]:
    """A job's destinations' secrets, decrypted, by shown form."""
    return {r.destination: unseal(box, r.secrets_encrypted) for r in recipients}
