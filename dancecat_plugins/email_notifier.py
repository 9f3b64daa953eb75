"""The built-in email notifier: one message per recipient per finished run, over SMTP.

Settings: ``SMTP_HOST`` (unset: email is off and each notification says so),
``SMTP_PORT``, ``SMTP_SECURITY`` (``none``, ``starttls`` or ``ssl``), ``SMTP_USER`` and
``SMTP_PASSWORD`` (login only when a user is set), ``SMTP_TIMEOUT``, ``MAIL_SENDER``.
A successful run's result goes as an attachment when it fits ``MAIL_ATTACHMENT_MAX_BYTES``
(XLSX, or the registered format a recipient names: ``ana@example.com?format=ods``);
otherwise the message links to the download page and says why — rows are never cut to
make a file fit.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from dancecat_core.errors import DancecatError, ValidationError
from dancecat_core.hookspecs import hookimpl
from dancecat_core.notifiers import (
    AlertNotice,
    Attachment,
    Destination,
    Export,
    Notifier,
    RunNotice,
    check_format,
    result_link,
    result_links,
)
from dancecat_core.services import validation
from dancecat_core.settings import (
    OPTIONAL_TEXT,
    POSITIVE_INT,
    TEXT,
    SettingSpec,
    choice,
)

if TYPE_CHECKING:  # only named in annotations: the email modules load at first use
    from email.message import EmailMessage

#: The attachment's format when a recipient names none (``?format=``).
ATTACHED_FORMAT = "xlsx"


def split_recipient(recipient: str) -> tuple[str, str]:
    """(address, query) of ``ana@example.com?format=ods``; a ``?`` before the ``@`` is the
    address's own."""
    at = recipient.find("@")
    mark = recipient.find("?", at + 1)
    return (recipient, "") if mark < 0 else (recipient[:mark], recipient[mark + 1 :])


@attrs.frozen
class MailNotice(RunNotice):
    """A ``RunNotice`` with the download link, why the result is not attached, and the
    message rendered from the job's templates (``dancecat_core.messages``)."""

    result_url: str = ""
    attachment_note: str = ""
    subject: str = ""
    body: str = ""
    html: str = ""


class EmailNotifier(Notifier):
    """Destinations: bare email addresses (``mailto:ADDRESS`` is read as ADDRESS)."""

    name = "email"
    schemes = ("mailto",)

    def parse(self, url: str) -> Destination:
        address = url.strip()
        if address.lower().startswith("mailto:"):
            address = address[len("mailto:") :]
        address, query = split_recipient(address)
        fmt = self._format(query)
        try:
            address = validation.email(address, "recipients", label="email")
        except ValidationError as error:
            raise ValidationError(str(error).removeprefix("email: ")) from None
        return Destination(address if fmt == ATTACHED_FORMAT else f"{address}?format={fmt}")

    def _format(self, query: str) -> str:
        """The attachment's format from a recipient's query (``format=ods``)."""
        try:
            pairs = urllib.parse.parse_qsl(query, strict_parsing=bool(query))
        except ValueError:
            raise ValidationError("an email address takes only ?format=FORMAT") from None
        options = dict(pairs)
        if set(options) - {"format"} or len(pairs) != len(options):
            raise ValidationError("an email address takes only ?format=FORMAT")
        return check_format(options.get("format", ATTACHED_FORMAT), self.formats)

    @property
    def configured(self) -> bool:
        return bool(self.settings.smtp_host)

    @property
    def unconfigured_reason(self) -> str:
        return "email is not configured: set SMTP_HOST to send results by email"

    @property
    def secrets(self) -> Sequence[str]:
        return (self.settings.smtp_password,) if self.settings.smtp_password else ()

    def prepare(
        self, notice: RunNotice, export: Export | None
    ) -> tuple[MailNotice, Attachment | None]:
        """A successful run's result in the recipient's format (XLSX unless it names one)
        if it fits MAIL_ATTACHMENT_MAX_BYTES; else no attachment and, in the notice, why
        not. Subject, body and attachment name come from the job's templates; one that
        fails falls back to the default, and the notice's ``notes`` say so (the run shows
        them)."""
        fmt = self._format(split_recipient(notice.recipient)[1])
        attachment, note = self._attachment(export, fmt) if export is not None else (None, "")
        url = result_link(self.settings, notice.tracker_id, fmt)
        context = {
            **notice.context,
            "result_url": url,
            "links": {
                **result_links(self.settings, notice.tracker_id, self.formats),
                fmt: url,
                "csv": f"{self.settings.base_url}/job/result/{notice.tracker_id}/csv",
            },
        }
        if export is not None:
            context["attachment_note"] = note or "The result is not attached."
        from dancecat_core.messages import render  # jinja2, at first use

        suffix = "." + attachment.filename.rpartition(".")[2] if attachment else None
        rendered = render(context, notice.templates, attached=suffix)
        if attachment is not None and suffix is not None:
            attachment = attrs.evolve(attachment, filename=rendered.filename + suffix)
        fields = attrs.asdict(notice, recurse=False)
        fields["notes"] = (*notice.notes, *rendered.notes)
        mail = MailNotice(
            **fields,
            result_url=url,
            attachment_note=note,
            subject=rendered.subject,
            body=rendered.body,
            html=rendered.html,
        )
        return mail, attachment

    def _attachment(self, export: Export, fmt: str) -> tuple[Attachment | None, str]:
        limit = self.settings.mail_attachment_max_bytes
        try:
            download = export(fmt)
        except DancecatError as exc:
            return None, f"The result is not attached: {exc}."
        if download.size is not None and download.size > limit:
            download.chunks.close()  # type: ignore[attr-defined]
            return None, _too_big(fmt, download.size, limit)
        data = bytearray()
        for chunk in download.chunks:
            data.extend(chunk)
            if len(data) > limit:
                download.chunks.close()  # type: ignore[attr-defined]
                return None, _too_big(fmt, None, limit)
        return Attachment(download.filename, download.media_type, bytes(data)), ""

    def build_message(self, notice: MailNotice, attachment: Attachment | None) -> EmailMessage:
        """The message for one recipient (separate so tests and previews can read it)."""
        ok = notice.status == "Success"
        # ``prepare`` rendered the job's templates; a notice built otherwise (a preview,
        # a test) gets the built-in text.
        subject = notice.subject or (
            f"DanceCat: {notice.job_name} — run {notice.tracker_id} "
            + ("succeeded" if ok else "failed")
        )
        message = self._headers(subject, [split_recipient(notice.recipient)[0]])
        message.set_content(notice.body or self._body(notice, attachment))
        if notice.html:
            message.add_alternative(notice.html, subtype="html")
        if attachment is not None:
            maintype, _, subtype = attachment.media_type.partition("/")
            message.add_attachment(
                attachment.data,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=attachment.filename,
            )
        return message

    def _body(self, notice: MailNotice, attachment: Attachment | None) -> str:
        lines = [
            f"Job: {notice.job_name} (job {notice.job_id})",
            f"Run: {notice.tracker_id}",
            f"Status: {notice.status}",
        ]
        if notice.parameters:
            lines.append(f"Parameters: {notice.parameters}")
        if notice.finished_at:
            lines.append(f"Finished: {notice.finished_at} (UTC)")
        if notice.duration_ms is not None:
            lines.append(f"Duration: {notice.duration_ms / 1000:.1f} s")
        if notice.status == "Success":
            if notice.row_count is not None:
                lines.append(f"Rows: {notice.row_count}")
            lines.append("")
            if attachment is not None:
                lines.append(f"The result is attached as {attachment.filename}.")
            else:
                lines.append(notice.attachment_note or "The result is not attached.")
            lines.append(f"Download: {notice.result_url}")
            if notice.scrub_note:
                lines += ["", notice.scrub_note]
        else:
            lines += ["", f"Error: {notice.error or 'unknown'}"]
        lines += ["", "-- ", "Sent by DanceCat."]
        return "\n".join(lines) + "\n"

    def deliver(self, notice: MailNotice, attachment: Attachment | None) -> None:  # type: ignore[override]
        address = split_recipient(notice.recipient)[0]
        self._send(self.build_message(notice, attachment), [address])

    carries_alerts = True

    def build_alert(self, notice: AlertNotice) -> EmailMessage:
        """One message to the owner (and opted-in admins) about a streak."""
        what = {
            ("failing", "opened"): "is failing",
            ("stale", "opened"): "has not succeeded for too long",
        }.get((notice.kind, notice.event), "has recovered")
        message = self._headers(f"DanceCat alert: {notice.job_name} {what}", notice.recipients)
        opened = notice.event == "opened"
        lines = [
            f"Job: {notice.job_name} (job {notice.job_id})",
            f"{'Why' if opened else 'Recovered'}: {notice.reason}",
            f"Job page: {notice.job_url}",
            "",
            "You are told once when this starts and once when it ends, not on every run."
            if opened
            else "This ends the alert.",
            "",
            "-- ",
            "Sent by DanceCat.",
        ]
        message.set_content("\n".join(lines) + "\n")
        return message

    def deliver_alert(self, notice: AlertNotice) -> None:
        self._send(self.build_alert(notice), list(notice.recipients))

    def _headers(self, subject: str, recipients: Sequence[str]) -> EmailMessage:
        # Imported at first use, not at start-up: every command loads every plugin.
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.settings.mail_sender
        message["To"] = ", ".join(recipients)
        message["Date"] = formatdate(localtime=False)
        domain = self.settings.mail_sender.rpartition("@")[2] or "dancecat.localhost"
        message["Message-ID"] = make_msgid("dancecat", domain=domain)
        return message

    def _send(self, message: EmailMessage, recipients: list[str]) -> None:
        settings = self.settings
        if not settings.smtp_host:
            raise RuntimeError(self.unconfigured_reason)
        import smtplib  # at first use, not at start-up: smtplib loads ssl and email
        import ssl

        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if settings.smtp_security == "ssl":
            smtp = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=settings.smtp_timeout,
                context=context,
            )
        else:
            smtp = smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
            )
        with smtp:
            if settings.smtp_security == "starttls":
                smtp.starttls(context=context)
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(message, from_addr=settings.mail_sender, to_addrs=recipients)


def _too_big(fmt: str, size: int | None, limit: int) -> str:
    mb = limit / (1024 * 1024)
    told = f" ({size / (1024 * 1024):.1f} MB)" if size is not None else ""
    return (
        f"The result is not attached: as {fmt.upper()} it is larger{told} than the {mb:g} MB "
        "attachment limit (MAIL_ATTACHMENT_MAX_BYTES). Download it, whole, from the link."
    )


@hookimpl
def dancecat_register_notifiers() -> list[type[Notifier]]:
    return [EmailNotifier]


@hookimpl
def dancecat_register_settings() -> list[SettingSpec]:
    return [
        SettingSpec(
            "SMTP_HOST",
            OPTIONAL_TEXT,
            None,
            "mail server for results by email; unset: email is off and each notification says so",
        ),
        SettingSpec("SMTP_PORT", POSITIVE_INT, 25, "the mail server's port"),
        SettingSpec(
            "SMTP_SECURITY",
            choice("none", "starttls", "ssl"),
            "none",
            "how the connection to the mail server is secured",
        ),
        SettingSpec(
            "SMTP_USER", OPTIONAL_TEXT, None, "login name at the mail server; unset: no login"
        ),
        SettingSpec("SMTP_PASSWORD", OPTIONAL_TEXT, None, "password for `SMTP_USER`", secret=True),
        SettingSpec("SMTP_TIMEOUT", POSITIVE_INT, 30, "seconds to wait for the mail server"),
        SettingSpec("MAIL_SENDER", TEXT, "dancecat@localhost", "From address"),
        SettingSpec(
            "MAIL_ATTACHMENT_MAX_BYTES",
            POSITIVE_INT,
            10 * 1024 * 1024,
            "larger results are sent as a link, not attached",
        ),
    ]
