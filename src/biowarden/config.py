"""Configuration from the environment.

- ``BIOWARDEN_HOME``: the state folder (default ``./.biowarden``).
- ``BIOWARDEN_DATABASE_URL``: the control-plane store (default SQLite in the home).
- ``BIOWARDEN_MASTER_KEY``: the custodian's master key (hex, 64 digits); otherwise ``HOME/master.key``.

The monitor's notifications (``load_notifier_settings``; read only where the monitor notifies, so a bad
setting never stops an unrelated command):

- ``BIOWARDEN_NOTIFIER``: ``log`` (the default: notifications go to the log; the ledger holds the record)
  or ``smtp``;
- for ``smtp``: ``BIOWARDEN_SMTP_HOST`` (required), ``BIOWARDEN_SMTP_PORT`` (default 587 with STARTTLS,
  25 without), ``BIOWARDEN_SMTP_FROM`` (required), ``BIOWARDEN_SMTP_TO`` (required: comma-separated
  addresses), ``BIOWARDEN_SMTP_STARTTLS`` (``true`` by default; ``false`` only for a relay on this
  machine's loopback), ``BIOWARDEN_SMTP_USERNAME`` and ``BIOWARDEN_SMTP_PASSWORD`` (both or neither;
  only over STARTTLS), ``BIOWARDEN_SMTP_CA_FILE`` (a PEM file of CAs to verify the relay's certificate
  with, for a relay with a private CA; otherwise the system's CAs), ``BIOWARDEN_SMTP_TIMEOUT`` (seconds,
  default 10).

The password is read from the environment only, kept out of ``repr`` and never logged.

The monitor's escalation ladder (``load_ladder_settings``; read by ``biowarden monitor scan``):

- ``BIOWARDEN_MONITOR_LADDER``: the step for an actor's 1st, 2nd, 3rd... incident in the look-back
  (comma-separated, each ``notify``, ``suspend_pending_review`` or ``disable``; the last repeats; default
  ``notify,suspend_pending_review,disable``, All of Us's ladder). A critical alert or a risk over the
  threshold suspends pending review at once whatever the step;
- ``BIOWARDEN_MONITOR_MERGE_MINUTES``: alerts about one actor within this many minutes merge into one
  incident (default 90);
- ``BIOWARDEN_MONITOR_LOOKBACK_DAYS``: how far back incidents count for the ladder (default 365).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it (never its secret value)."""


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str

    @property
    def master_key_path(self) -> Path:
        return self.home / "master.key"

    @property
    def cohort_dir(self) -> Path:
        return self.home / "cohort"


def load_settings(home: str | os.PathLike[str] | None = None) -> Settings:
    root = Path(home or os.environ.get("BIOWARDEN_HOME") or ".biowarden").resolve()
    url = os.environ.get("BIOWARDEN_DATABASE_URL") or f"sqlite:///{root / 'biowarden.db'}"
    return Settings(home=root, database_url=url)


NOTIFIERS = ("log", "smtp")
_ADDRESS = re.compile(r"[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.\-]{0,252})|\[[0-9A-Fa-f:.]+\]")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class SmtpSettings:
    """An SMTP relay for the monitor's notifications."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class NotifierSettings:
    kind: str = "log"  # log | smtp
    smtp: SmtpSettings | None = None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_notifier_settings(env: Mapping[str, str] | None = None) -> NotifierSettings:
    """The monitor's notifier from the environment; ``ConfigError`` names a missing or malformed setting."""
    env = os.environ if env is None else env
    kind = (env.get("BIOWARDEN_NOTIFIER") or "log").strip().lower()
    if kind not in NOTIFIERS:
        raise ConfigError(f"BIOWARDEN_NOTIFIER must be one of {', '.join(NOTIFIERS)}, not {kind!r}")
    if kind == "log":
        return NotifierSettings()

    def need(name: str) -> str:
        value = (env.get(name) or "").strip()
        if not value:
            raise ConfigError(f"{name} is required when BIOWARDEN_NOTIFIER=smtp")
        return value

    host = need("BIOWARDEN_SMTP_HOST")
    if not _HOST.fullmatch(host):
        raise ConfigError(f"BIOWARDEN_SMTP_HOST {host!r} is not a host name or address")
    starttls = _flag(env, "BIOWARDEN_SMTP_STARTTLS", True)
    raw_port = (env.get("BIOWARDEN_SMTP_PORT") or "").strip()
    try:
        port = int(raw_port) if raw_port else (587 if starttls else 25)
    except ValueError:
        raise ConfigError(f"BIOWARDEN_SMTP_PORT must be a port number, not {raw_port!r}") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"BIOWARDEN_SMTP_PORT must be between 1 and 65535, not {port}")
    sender = need("BIOWARDEN_SMTP_FROM")
    if not _ADDRESS.fullmatch(sender):
        raise ConfigError(f"BIOWARDEN_SMTP_FROM {sender!r} is not an e-mail address")
    recipients = tuple(a.strip() for a in need("BIOWARDEN_SMTP_TO").split(",") if a.strip())
    bad = [a for a in recipients if not _ADDRESS.fullmatch(a)]
    if bad or not recipients:
        raise ConfigError(f"BIOWARDEN_SMTP_TO holds a value that is not an e-mail address: {bad[0] if bad else ''!r}")
    username = (env.get("BIOWARDEN_SMTP_USERNAME") or "").strip() or None
    password = env.get("BIOWARDEN_SMTP_PASSWORD") or None
    if (username is None) != (password is None):
        raise ConfigError("set both BIOWARDEN_SMTP_USERNAME and BIOWARDEN_SMTP_PASSWORD, or neither")
    if username is not None and not starttls:
        raise ConfigError("SMTP credentials are sent only over STARTTLS: set BIOWARDEN_SMTP_STARTTLS=true")
    if not starttls and not _loopback(host):
        raise ConfigError(
            f"BIOWARDEN_SMTP_STARTTLS=false is allowed only for a relay on this machine's loopback, not {host!r}"
        )
    ca_raw = (env.get("BIOWARDEN_SMTP_CA_FILE") or "").strip()
    ca_file = Path(ca_raw) if ca_raw else None
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"BIOWARDEN_SMTP_CA_FILE {ca_raw!r} is not a file")
    raw_timeout = (env.get("BIOWARDEN_SMTP_TIMEOUT") or "").strip()
    try:
        timeout = float(raw_timeout) if raw_timeout else 10.0
    except ValueError:
        raise ConfigError(f"BIOWARDEN_SMTP_TIMEOUT must be a number of seconds, not {raw_timeout!r}") from None
    if not 0 < timeout <= 300:
        raise ConfigError("BIOWARDEN_SMTP_TIMEOUT must be between 0 and 300 seconds")
    return NotifierSettings(
        "smtp", SmtpSettings(host, port, sender, recipients, starttls, username, password, ca_file, timeout)
    )


LADDER_STEPS = ("notify", "suspend_pending_review", "disable")


@dataclass(frozen=True)
class LadderSettings:
    steps: tuple[str, ...] = LADDER_STEPS
    merge_minutes: int = 90
    lookback_days: int = 365


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int, unit: str) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of {unit}, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high} {unit}, not {value}")
    return value


def load_ladder_settings(env: Mapping[str, str] | None = None) -> LadderSettings:
    """The monitor's escalation ladder from the environment; ``ConfigError`` names a malformed setting."""
    env = os.environ if env is None else env
    raw = (env.get("BIOWARDEN_MONITOR_LADDER") or "").strip()
    steps = LADDER_STEPS
    if raw:
        steps = tuple(x.strip().lower() for x in raw.split(","))
        bad = [x for x in steps if x not in LADDER_STEPS]
        if bad or len(steps) > 10:
            raise ConfigError(
                f"BIOWARDEN_MONITOR_LADDER must list up to 10 steps from {', '.join(LADDER_STEPS)}"
                + (f"; {bad[0]!r} is not one" if bad else "")
            )
    return LadderSettings(
        steps,
        _int(env, "BIOWARDEN_MONITOR_MERGE_MINUTES", 90, 1, 1440, "minutes"),
        _int(env, "BIOWARDEN_MONITOR_LOOKBACK_DAYS", 365, 1, 3650, "days"),
    )
