"""The SFTP destination: ``sftp://user[:password]@host[:port]/folder/`` gets each result file.

The file is written under a temporary name in the folder and renamed into place, so a
reader never sees half a file and a resend (same run, same destination) replaces the file
rather than adding a second one. The path is absolute, as in curl; ``/~/folder/`` is
relative to the login's home.

Host keys are checked, never silently accepted: against ``?host_key=TYPE%20BASE64`` (the
known-hosts entry kept with the destination), else against the entry learned earlier for
that host and port in ``HOME/sftp_known_hosts`` (OpenSSH format); a host with neither is
refused with its key's entry to paste, unless the destination says ``?trust=first-use``,
which records the key on the first delivery. A key that differs from the recorded one is
always refused.

Login: the URL's password (kept encrypted, shown as ``***``), else DanceCat's own key
(``SFTP_KEY_FILE``).
"""

from __future__ import annotations

from pathlib import Path

from dancecat_core.hookspecs import hookimpl
from dancecat_core.notifiers import Attachment, Destination, Export, Notifier, RunNotice
from dancecat_core.settings import OPTIONAL_TEXT, SettingSpec
from dancecat_plugins.destination_files import FileNotice, check_on_save, prepare_file
from dancecat_plugins.sftp_target import SCHEME, parse_target


class SftpNotifier(Notifier):
    """Writes each successful run's result file to an ``sftp://`` destination."""

    name = "sftp"
    schemes = (SCHEME,)

    def parse(self, url: str) -> Destination:
        target = parse_target(url)
        check_on_save(self, target.host, target.format)
        return Destination(
            target.shown(), {"url": url.strip()} if target.password is not None else {}
        )

    def prepare(
        self, notice: RunNotice, export: Export | None
    ) -> tuple[FileNotice, Attachment | None]:
        return prepare_file(notice, export, parse_target(notice.url).format), None

    def deliver(self, notice: FileNotice, attachment: Attachment | None) -> None:  # type: ignore[override]
        if notice.result is None:
            return  # a failed run has no file to write
        from dancecat_plugins import sftp_transfer

        chunks = notice.result.chunks
        try:
            target = parse_target(notice.url)
            key_file = self.settings.sftp_key_file
            sftp_transfer.upload(
                target,
                notice.file_name,
                chunks,
                notice.delivery_key or "test",
                login=sftp_transfer.Login(target.password, Path(key_file) if key_file else None),
                known_hosts=sftp_transfer.KnownHosts(
                    self.settings.home / sftp_transfer.KNOWN_HOSTS_FILE
                ),
                timeout=self.settings.delivery_timeout,
                allow_private=self.settings.delivery_allow_private_hosts,
            )
        finally:
            chunks.close()  # type: ignore[attr-defined]


@hookimpl
def dancecat_register_notifiers() -> list[type[Notifier]]:
    return [SftpNotifier]


@hookimpl
def dancecat_register_settings() -> list[SettingSpec]:
    return [
        SettingSpec(
            "SFTP_KEY_FILE",
            OPTIONAL_TEXT,
            None,
            "DanceCat's SSH private key (OpenSSH format), used to log in to SFTP "
            "destinations whose URL has no password; put its public key only on accounts "
            "meant to receive results",
        ),
    ]
