"""Each setting is declared once (core: ``Settings``' fields; plugins: their
``dancecat_register_settings`` hook): read from the INI file and ``DANCECAT_*`` alike,
listed by ``dancecat settings`` with secrets hidden, and rendered as the README's table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dancecat_core.commands.settings import markdown_table
from dancecat_core.errors import ConfigError, PluginError
from dancecat_core.hookspecs import hookimpl
from dancecat_core.plugins import get_plugin_manager
from dancecat_core.runtime import build_runtime
from dancecat_core.settings import (
    CORE_SETTINGS,
    POSITIVE_INT,
    TEXT,
    SettingSpec,
    collect_specs,
    load_settings,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).parent / "plugin_example"
MAIL = {
    "SMTP_HOST": ("mail.example.org", "mail.example.org"),
    "SMTP_PORT": ("2525", 2525),
    "SMTP_SECURITY": ("STARTTLS", "starttls"),
    "SMTP_USER": ("reports", "reports"),
    "SMTP_PASSWORD": ("Mail-Secret-1", "Mail-Secret-1"),
    "SMTP_TIMEOUT": ("7", 7),
    "MAIL_SENDER": ("dc@example.org", "dc@example.org"),
    "MAIL_ATTACHMENT_MAX_BYTES": ("1000", 1000),
}


def dancecat(home: Path, *args: str, example: bool = False, **env: str):
    environ = {**os.environ, "DANCECAT_HOME": str(home), **env}
    environ.pop("DANCECAT_CONFIG", None)
    if example:
        environ["PYTHONPATH"] = str(EXAMPLE)
    return subprocess.run(
        [sys.executable, "-m", "dancecat_core.console", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_readme_table_is_the_declarations():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert markdown_table(collect_specs(get_plugin_manager())) in readme


def test_every_key_is_declared_once_and_mail_lives_in_the_email_plugin():
    specs = collect_specs(get_plugin_manager())
    keys = [spec.key for spec in specs]
    assert len(keys) == len(set(keys))
    origins = {spec.key: spec.origin for spec in specs}
    for key in MAIL:
        assert origins[key] == "email_notifier", key
    assert {spec.key for spec in CORE_SETTINGS}.isdisjoint(MAIL)
    # The other core keys all stayed core.
    assert origins["NOTIFY_RETRIES"] == origins["BASE_URL"] == "core"


@pytest.mark.parametrize(("key", "given"), list(MAIL.items()))
def test_mail_settings_keep_every_key_and_env_var(tmp_path, key, given):
    raw, value = given
    attribute = key.lower()
    from_env = load_settings(environ={"DANCECAT_HOME": str(tmp_path), f"DANCECAT_{key}": raw})
    assert getattr(from_env, attribute) == value
    for spelling in (key.lower(), key, f"dancecat.{key.lower()}"):
        ini = tmp_path / "dancecat.ini"
        ini.write_text(f"[app:main]\n{spelling} = {raw}\n")
        from_ini = load_settings(ini, environ={"DANCECAT_HOME": str(tmp_path)})
        assert getattr(from_ini, attribute) == value, spelling
    # The environment still wins over the INI file.
    ini.write_text(f"[app:main]\n{key} = {raw}\n")
    default = load_settings(environ={"DANCECAT_HOME": str(tmp_path)})
    both = load_settings(
        ini,
        environ={"DANCECAT_HOME": str(tmp_path), f"DANCECAT_{key}": str(_default_raw(key))},
    )
    assert getattr(both, attribute) == getattr(default, attribute)


def _default_raw(key: str) -> str:
    spec = next(s for s in collect_specs(get_plugin_manager()) if s.key == key)
    return "" if spec.default is None else str(spec.default)


def test_mail_settings_reach_the_runtime_and_its_notifier(tmp_path):
    settings = load_settings(
        environ={"DANCECAT_HOME": str(tmp_path), "DANCECAT_SMTP_HOST": "mx.example.org"}
    )
    runtime = build_runtime(settings)
    try:
        assert runtime.settings.smtp_host == "mx.example.org"
        assert runtime.notifiers["email"].configured
    finally:
        runtime.engine.dispose()


class Duplicate:
    @hookimpl
    def dancecat_register_settings(self):
        return [SettingSpec("SMTP_HOST", TEXT, None, "again")]


class CoreClash:
    @hookimpl
    def dancecat_register_settings(self):
        return [SettingSpec("DB_TIMEOUT", POSITIVE_INT, 5, "mine")]


class LowerCase:
    @hookimpl
    def dancecat_register_settings(self):
        return [SettingSpec("my_key", TEXT, "", "lower")]


class NotASpec:
    @hookimpl
    def dancecat_register_settings(self):
        return [("KEY", "text")]


@pytest.mark.parametrize(
    ("plugin", "says"),
    [
        (Duplicate, "SMTP_HOST is declared twice"),
        (CoreClash, "DB_TIMEOUT is declared twice: by core"),
        (LowerCase, "must be upper-case"),
        (NotASpec, "must return SettingSpec"),
    ],
)
def test_a_clashing_or_malformed_declaration_stops_start_up(settings, plugin, says):
    pm = get_plugin_manager()
    pm.register(plugin())
    with pytest.raises(PluginError, match=says):
        build_runtime(settings, plugin_manager=pm)


def test_a_third_party_setting_is_read_checked_and_listed(tmp_path):
    """The example package (installed through the entry-point group) declares
    TOY_MAX_SQUARES: the INI file and the environment set it, a bad value stops any
    command that loads the plugins with one line naming the key, and ``dancecat settings``
    lists it with its origin."""
    ini = tmp_path / "dancecat.ini"
    ini.write_text("[app:main]\ntoy_max_squares = 12\n")
    listed = dancecat(tmp_path, "-c", str(ini), "settings", "--json", example=True)
    assert listed.returncode == 0, listed.stderr
    toy = next(row for row in json.loads(listed.stdout) if row["key"] == "TOY_MAX_SQUARES")
    assert toy == {
        "key": "TOY_MAX_SQUARES",
        "value": "12",
        "default": "1000",
        "type": "positive integer",
        "origin": "example",
        "help": "most squares the toy serves",
    }
    env = dancecat(tmp_path, "settings", example=True, DANCECAT_TOY_MAX_SQUARES="40")
    assert "TOY_MAX_SQUARES\t40\t1000\t" in env.stdout
    bad = dancecat(tmp_path, "settings", example=True, DANCECAT_TOY_MAX_SQUARES="lots")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "error: setting TOY_MAX_SQUARES: 'lots' must be a whole number"
    ]
    # Without the plugin the key is nobody's: ignored, not listed.
    alone = dancecat(tmp_path, "settings", DANCECAT_TOY_MAX_SQUARES="lots")
    assert alone.returncode == 0 and "TOY_MAX_SQUARES" not in alone.stdout


def test_settings_lists_every_declared_key_and_hides_secrets(tmp_path):
    secret = "Hunter2-Mail-Pass"
    db_password = "Pg-Pass-77x"
    done = dancecat(
        tmp_path,
        "settings",
        DANCECAT_SMTP_PASSWORD=secret,
        DANCECAT_DATABASE_URL=f"postgresql+psycopg2://dc:{db_password}@db.example/dc",
        DANCECAT_SECRET_KEY="Session-Signing-Key-1234",
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0] == "key\tvalue\tdefault\ttype\torigin\thelp"
    keys = [line.split("\t")[0] for line in lines[1:]]
    assert keys == [spec.key for spec in collect_specs(get_plugin_manager())]
    for hidden in (secret, db_password, "Session-Signing-Key-1234"):
        assert hidden not in done.stdout
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    assert rows["SMTP_PASSWORD"][1] == rows["SECRET_KEY"][1] == "*****"
    assert rows["SMTP_USER"][1] == "unset"


def test_settings_markdown_is_the_table(tmp_path):
    done = dancecat(tmp_path, "settings", "--markdown")
    assert done.returncode == 0, done.stderr
    assert done.stdout == markdown_table(collect_specs(get_plugin_manager()))


def test_a_bad_mail_setting_names_its_key_in_one_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"DANCECAT_HOME": str(tmp_path), "DANCECAT_SMTP_PORT": "0"})
    assert str(info.value) == "setting SMTP_PORT: '0' must be a positive integer"
