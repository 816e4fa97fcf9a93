"""The monitor's notification sender and escalation ladder, as configured (``biowarden.config``): the log
sender by default, or e-mail through an SMTP relay; All of Us's ladder by default."""

from __future__ import annotations

from datetime import timedelta

from biowarden.config import LadderSettings, NotifierSettings, load_ladder_settings, load_notifier_settings
from biowarden.monitor.incidents import Ladder, LogNotifier, Notifier, SmtpNotifier


def ladder_from_settings(settings: LadderSettings | None = None) -> Ladder:
    """The configured ladder (read from the environment when ``settings`` is None)."""
    settings = settings or load_ladder_settings()
    return Ladder(
        steps=settings.steps,
        merge_window=timedelta(minutes=settings.merge_minutes),
        lookback=timedelta(days=settings.lookback_days),
    )


def notifier_from_settings(settings: NotifierSettings | None = None) -> Notifier:
    """The configured sender (read from the environment when ``settings`` is None; a bad setting raises
    ``biowarden.config.ConfigError`` naming it)."""
    settings = settings or load_notifier_settings()
    if settings.kind == "smtp":
        smtp = settings.smtp
        assert smtp is not None
        return SmtpNotifier(
            smtp.host,
            smtp.port,
            smtp.sender,
            list(smtp.recipients),
            smtp.username,
            smtp.password,
            smtp.starttls,
            ca_file=str(smtp.ca_file) if smtp.ca_file else None,
            timeout=smtp.timeout,
        )
    return LogNotifier()


def describe(notifier: Notifier) -> str:
    """What a custodian sees of the sender: its kind and relay, never a credential."""
    if isinstance(notifier, SmtpNotifier):
        auth = f", as {notifier.username}" if notifier.username else ""
        tls = "STARTTLS" if notifier.starttls else "no TLS"
        return f"smtp {notifier.host}:{notifier.port} ({tls}{auth}) to {', '.join(notifier.recipients)}"
    return "log"
