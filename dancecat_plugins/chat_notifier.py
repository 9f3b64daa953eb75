"""Chat destinations through apprise: Slack, Teams, Discord, Mattermost, Telegram, ...

Any apprise URL (``slack://``, ``workflows://`` for Microsoft Teams, ``discord://``,
``mmost://``, ``tgram://``, ``json://``, ``form://``...; https://github.com/caronc/apprise/wiki)
is a destination, except the schemes apprise shares with DanceCat's own notifiers
(``mailto``) and its desktop-only ones. apprise is the dependency because it keeps a
hundred services' APIs current, which DanceCat could not; each message carries the run's
summary, its first rows as a small table (Markdown, which apprise converts for services
that take plain text) and the download links.

A destination is shown as apprise's own privacy form of the URL (every token and password
it knows to be secret replaced by ``***``); the URL as typed is kept encrypted. For the
services that talk to a host named in the URL (``json://``, ``mmost://``, ...), that host
must resolve to public addresses unless ``DELIVERY_ALLOW_PRIVATE_HOSTS``: apprise makes the
connection itself, so this is checked just before it does (see docs/DELIVERY.md).
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import re
import urllib.parse
from typing import TYPE_CHECKING

import attrs

from dancecat_core.errors import DancecatError, ValidationError
from dancecat_core.hookspecs import hookimpl
from dancecat_core.notifiers import (
    MASK,
    Attachment,
    Destination,
    Export,
    Notifier,
    RunNotice,
    result_links,
)
from dancecat_core.outbound import literal_refusal, resolve

if TYPE_CHECKING:
    import apprise

# Left to DanceCat's own notifiers, or not a chat (desktop and device notifications).
NOT_CLAIMED = frozenset(
    {"mailto", "mailtos", "dbus", "gnome", "kde", "glib", "qt", "macosx", "windows", "blink1"}
)
TABLE_ROWS = 5
CELL_CHARS = 24
_HEAD_BYTES = 64 * 1024
# apprise's privacy form shows a token as its first and last character around "...".
_PRIVATE_TOKEN = re.compile(r"(?<![^/:@])[^/:@?&=]\.\.\.[^/:@?&=](?![^/:@?&])")


@attrs.frozen
class ChatNotice(RunNotice):
    """A ``RunNotice`` with the first rows as a text table (empty when there is none)."""

    table: str = ""


@functools.cache
def _apprise_schemes() -> tuple[str, ...]:
    import apprise

    return tuple(sorted(set(apprise.NotificationManager().schemas()) - NOT_CLAIMED))


class _AppriseSchemes:
    """``ChatNotifier.schemes``, read from apprise on first use: importing apprise and
    listing its services loads every service module (~0.35 s of CPU), which a process
    that sends no chat message (``dancecat export``, ``job list``) should not pay."""

    def __get__(self, instance: object, owner: type | None = None) -> tuple[str, ...]:
        return _apprise_schemes()


def _instantiate(url: str) -> apprise.NotifyBase:
    import apprise

    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise ValidationError(
            f"not a valid {urllib.parse.urlsplit(url).scheme}:// URL for apprise "
            "(https://github.com/caronc/apprise/wiki lists each service's form)"
        )
    return plugin


def shown_form(plugin: apprise.NotifyBase, typed: str) -> str:
    """apprise's privacy URL, its partly shown tokens fully masked, with only the query
    options the user typed (apprise lists every default)."""
    private = urllib.parse.urlsplit(plugin.url(privacy=True))
    given = {
        name for name, _ in urllib.parse.parse_qsl(urllib.parse.urlsplit(typed).query, True)
    }
    query = urllib.parse.urlencode(
        [(k, v) for k, v in urllib.parse.parse_qsl(private.query, True) if k in given]
    )
    where = _PRIVATE_TOKEN.sub(MASK, f"{private.netloc}{private.path}").replace("****", MASK)
    return f"{private.scheme}://{where}" + (f"?{query}" if query else "")


def _named_host(plugin: apprise.NotifyBase) -> str | None:
    """The host the service connects to when the URL names it (self-hosted services)."""
    if "host" not in getattr(type(plugin), "template_tokens", {}):
        return None
    return plugin.host or None


class ChatNotifier(Notifier):
    name = "chat"
    schemes = _AppriseSchemes()  # type: ignore[assignment]

    def parse(self, url: str) -> Destination:
        plugin = _instantiate(url)
        host = _named_host(plugin)
        if host:
            why = literal_refusal(host, self.settings.delivery_allow_private_hosts)
            if why:
                raise ValidationError(
                    f"{why}; chat destinations on private, loopback and link-local hosts "
                    "need DELIVERY_ALLOW_PRIVATE_HOSTS"
                )
        shown = shown_form(plugin, url)
        return Destination(shown, {"url": url} if shown != url else {})

    def prepare(self, notice: RunNotice, export: Export | None) -> tuple[ChatNotice, None]:
        table = _first_rows(export) if export is not None else ""
        return ChatNotice(**attrs.asdict(notice, recurse=False), table=table), None

    def message(self, notice: ChatNotice) -> tuple[str, str]:
        """The title and the Markdown body for ``notice``."""
        ok = notice.status == "Success"
        title = f"DanceCat: {notice.job_name} — run {notice.tracker_id} " + (
            "succeeded" if ok else "failed"
        )
        if notice.test:
            title = f"DanceCat: test message for {notice.job_name}"
        lines = [f"**Status:** {notice.status}"]
        if notice.row_count is not None:
            lines.append(f"**Rows:** {notice.row_count}")
        if notice.finished_at:
            lines.append(f"**Finished:** {notice.finished_at} (UTC)")
        if ok and notice.table:
            lines += ["", "```", notice.table, "```"]
        if ok and not notice.test:
            links = result_links(self.settings, notice.tracker_id, self.formats)
            lines += ["", " · ".join(f"[{fmt.upper()}]({url})" for fmt, url in links.items())]
        if notice.scrub_note:
            lines += ["", notice.scrub_note]
        if not ok:
            lines += ["", f"**Error:** {notice.error or 'unknown'}"]
        return title, "\n".join(lines)

    def deliver(self, notice: ChatNotice, attachment: Attachment | None) -> None:  # type: ignore[override]
        plugin = _instantiate(notice.url)
        host = _named_host(plugin)
        if host:
            allow = self.settings.delivery_allow_private_hosts
            resolve(host, plugin.port or 443, allow_private=allow)
        plugin.socket_connect_timeout = self.settings.delivery_timeout
        plugin.socket_read_timeout = self.settings.delivery_timeout
        title, body = self.message(notice)
        import apprise

        sender = apprise.Apprise()
        sender.add(plugin)
        with apprise.LogCapture(level=logging.WARNING) as captured:
            sent = sender.notify(
                body=body,
                title=title,
                body_format=apprise.NotifyFormat.MARKDOWN,
                notify_type=apprise.NotifyType.SUCCESS
                if notice.status == "Success"
                else apprise.NotifyType.FAILURE,
            )
            said = captured.getvalue().strip().splitlines()
        if not sent:
            reason = said[-1] if said else "the service refused the message"
            raise DancecatError(f"{plugin.service_name}: {reason}")


def _first_rows(export: Export) -> str:
    """The result's header and first ``TABLE_ROWS`` rows as an aligned text table, read
    from the head of its CSV only."""
    try:
        download = export("csv")
    except DancecatError:
        return ""
    head = bytearray()
    whole = True
    try:
        for chunk in download.chunks:
            head.extend(chunk)
            if len(head) >= _HEAD_BYTES or head.count(b"\n") > TABLE_ROWS + 1:
                whole = False
                break
    finally:
        download.chunks.close()  # type: ignore[attr-defined]
    rows = list(csv.reader(io.StringIO(head.decode("utf-8", "replace").lstrip("\ufeff"))))
    if not whole:
        rows = rows[:-1]  # it may be cut short
    rows = rows[: TABLE_ROWS + 1]
    cells = [[_cell(value) for value in row] for row in rows if row]
    if not cells:
        return ""
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(len(cells[0]))]
    lines = [" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: str) -> str:
    value = " ".join(value.split())
    return value if len(value) <= CELL_CHARS else value[: CELL_CHARS - 1] + "…"


@hookimpl
def dancecat_register_notifiers() -> list[type[Notifier]]:
    return [ChatNotifier]
