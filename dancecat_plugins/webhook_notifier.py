"""Webhook destinations: ``https://…`` (or ``http://…``) gets a signed JSON POST per run.

The body is ``{"job": {"id", "name"}, "run": {"id", "status", "rows", "due_at",
"finished_at", "parameters"}, "links": {FORMAT: URL, one per registered format}, "error":
…}``. Headers:
``X-DanceCat-Delivery`` (the same on every try of one delivery: the receiver drops a
duplicate by it) and ``X-DanceCat-Signature: sha256=<hex HMAC-SHA256 of the body>`` keyed
by the destination's secret, generated when it is added and shown once.

Connections go through ``dancecat_core.outbound`` (public addresses only unless
``DELIVERY_ALLOW_PRIVATE_HOSTS``), time out after ``DELIVERY_TIMEOUT`` seconds, and follow
a 307/308 redirect only to the same scheme, host and port: a redirect must not carry the
signed body (or the check above) somewhere else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import re
import ssl
import urllib.parse
from typing import Any

from dancecat_core.destinations import GENERATED
from dancecat_core.errors import DancecatError, ValidationError
from dancecat_core.hookspecs import hookimpl
from dancecat_core.notifiers import MASK, Attachment, Destination, Notifier, RunNotice
from dancecat_core.notifiers import result_links as links_of
from dancecat_core.outbound import connect, literal_refusal

MAX_REDIRECTS = 3
# Query parameters and path segments that look like credentials are masked when shown.
_SECRET_NAME = re.compile(r"(?i)(pass|pwd|secret|token|key|sig|auth|code|credential)")
_TOKEN_LIKE = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[A-Za-z0-9_\-.~%]{16,}$")


def mask_url(parts: urllib.parse.SplitResult) -> str:
    """The URL as shown: the password, credential-named query values and token-like path
    segments (16+ characters mixing letters and digits, as Slack or Discord hook paths)
    replaced by ``MASK``."""
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    if parts.username is not None:
        user = parts.username + (f":{MASK}" if parts.password is not None else "")
        netloc = f"{user}@{netloc}"
    path = "/".join(MASK if _TOKEN_LIKE.match(seg) else seg for seg in parts.path.split("/"))
    query = "&".join(
        f"{name}={MASK if _SECRET_NAME.search(urllib.parse.unquote(name)) else value}"
        if sep
        else name
        for item in parts.query.split("&")
        if item
        for name, sep, value in [item.partition("=")]
    )
    return urllib.parse.urlunsplit((parts.scheme.lower(), netloc, path, query, ""))


class WebhookNotifier(Notifier):
    name = "webhook"
    schemes = ("https", "http")
    generated_secret = "webhook secret"

    def parse(self, url: str) -> Destination:
        if any(ch.isspace() or ord(ch) < 32 for ch in url):
            raise ValidationError("a webhook URL cannot contain spaces or control characters")
        parts = urllib.parse.urlsplit(url)
        try:
            parts.port  # noqa: B018 - reading it checks it
        except ValueError:
            raise ValidationError(
                "the webhook URL's port is not a number from 1 to 65535"
            ) from None
        if not parts.hostname:
            raise ValidationError("a webhook URL needs a host: https://host/path")
        if parts.fragment:
            raise ValidationError("a webhook URL cannot have a #fragment")
        why = literal_refusal(parts.hostname, self.settings.delivery_allow_private_hosts)
        if why:
            raise ValidationError(
                f"{why}; webhooks to private, loopback and link-local hosts need "
                "DELIVERY_ALLOW_PRIVATE_HOSTS"
            )
        shown = mask_url(parts)
        return Destination(shown, {"url": url} if shown != url else {})

    def body(self, notice: RunNotice) -> bytes:
        """The JSON posted for ``notice`` (separate so tests and docs can read it)."""
        ok = notice.status == "Success"
        payload: dict[str, Any] = {
            "job": {"id": notice.job_id, "name": notice.job_name},
            "run": {
                "id": notice.tracker_id,
                "status": notice.status,
                "rows": notice.row_count,
                "due_at": notice.due_at,
                "finished_at": notice.finished_at,
                "parameters": dict(notice.parameter_values),
            },
            "links": links_of(self.settings, notice.tracker_id, self.formats)
            if ok and not notice.test
            else dict.fromkeys(self.formats),
            "error": notice.error,
        }
        if notice.test:
            payload["test"] = True
        return json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")

    def deliver(self, notice: RunNotice, attachment: Attachment | None) -> None:
        secret = notice.secrets.get(GENERATED)
        if not secret:
            raise DancecatError(
                "this webhook has no signing secret (it was removed from the job since)"
            )
        body = self.body(notice)
        signature = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        headers = {
            **_basic_auth(notice.url),
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "DanceCat-Webhook",
            "X-DanceCat-Delivery": notice.delivery_key,
            "X-DanceCat-Signature": f"sha256={signature}",
        }
        url = notice.url
        for _ in range(MAX_REDIRECTS + 1):
            status, reason, location, text = self._post(url, body, headers)
            if 200 <= status < 300:
                return
            if status in (307, 308) and location:
                target = urllib.parse.urljoin(url, location)
                if _origin(target) != _origin(url):
                    raise DancecatError(
                        f"HTTP {status}: redirected to another host "
                        f"({urllib.parse.urlsplit(target).hostname}); not followed"
                    )
                url = target
                continue
            raise DancecatError(f"HTTP {status} {reason}: {text}".rstrip(": "))
        raise DancecatError(f"more than {MAX_REDIRECTS} redirects; not followed")

    def _post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str, str | None, str]:
        parts = urllib.parse.urlsplit(url)
        https = parts.scheme.lower() == "https"
        host, port = parts.hostname or "", parts.port or (443 if https else 80)
        timeout = self.settings.delivery_timeout
        sock = connect(
            host,
            port,
            timeout=timeout,
            allow_private=self.settings.delivery_allow_private_hosts,
        )
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        if https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        connection.sock = sock
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read(300).decode("utf-8", "replace").strip()
            return response.status, response.reason, response.getheader("Location"), text
        finally:
            connection.close()


def _basic_auth(url: str) -> dict[str, str]:
    """An ``Authorization`` header for a URL with ``user:password@``."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return {}
    pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")}


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urllib.parse.urlsplit(url)
    https = parts.scheme.lower() == "https"
    return parts.scheme.lower(), parts.hostname, parts.port or (443 if https else 80)


@hookimpl
def dancecat_register_notifiers() -> list[type[Notifier]]:
    return [WebhookNotifier]
