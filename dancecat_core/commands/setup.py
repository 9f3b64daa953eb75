"""``dancecat init`` and ``dancecat rotate-key``."""

from __future__ import annotations

import argparse
import os

from cryptography.fernet import Fernet
from sqlalchemy import select

from dancecat_core import migrations
from dancecat_core.commands.context import runtime_for
from dancecat_core.crypto import SecretBox
from dancecat_core.db import session_scope
from dancecat_core.errors import ConfigError
from dancecat_core.models import Connection, JobRecipient, Trigger
from dancecat_core.settings import encryption_key_file


def declare_init(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=init_command)


def declare_rotate_key(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=rotate_key_command)


def init_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args, check_schema=False)
    migrations.upgrade(runtime.engine)
    print(f"app database ready: {runtime.engine.url.render_as_string(hide_password=True)}")
    return 0


def rotate_key_command(args: argparse.Namespace) -> int:
    """Add a new first key, re-encrypt every password under it; old keys keep decrypting.

    Running processes keep working throughout: they still hold the old key, and every
    stored password stays readable under either key until the old one is retired (remove
    it from the key file once every process has restarted).
    """
    runtime = runtime_for(args)
    settings = runtime.settings
    if os.environ.get("DANCECAT_ENCRYPTION_KEYS"):
        raise ConfigError(
            "setting ENCRYPTION_KEYS: keys come from the environment; put a new key first "
            "there and run rotate-key again with it"
        )
    new_key = Fernet.generate_key().decode("ascii")
    keys = (new_key, *settings.encryption_keys)
    path = encryption_key_file(settings.home)
    temp = path.with_suffix(".new")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(keys) + "\n")
    box = SecretBox(keys)
    count = 0
    with session_scope(runtime.session_factory) as session:
        for connection in session.scalars(
            select(Connection).where(Connection.password_encrypted.is_not(None))
        ):
            connection.password_encrypted = box.rotate(connection.password_encrypted)
            count += 1
        for trigger in session.scalars(
            select(Trigger).where(Trigger.secret_encrypted.is_not(None))
        ):
            trigger.secret_encrypted = box.rotate(trigger.secret_encrypted)
        sealed = 0
        for recipient in session.scalars(
            select(JobRecipient).where(JobRecipient.secrets_encrypted.is_not(None))
        ):
            recipient.secrets_encrypted = box.rotate(recipient.secrets_encrypted)
            sealed += 1
        os.replace(temp, path)
    print(
        f"re-encrypted {count} connection password(s) and the secrets of {sealed} "
        "destination(s) under a new key; "
        f"{len(keys) - 1} older key(s) kept for running processes"
    )
    return 0
