"""The monitor's notifier as configured: the log sender by default, SMTP (STARTTLS verified against the
relay's CA, credentials only after it) against a relay on the loopback; clear errors on bad settings; the
password never in a message, a log record or a repr; a relay that fails never stops the ladder."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from biowarden.cli.main import app as cli
from biowarden.config import ConfigError, load_notifier_settings
from biowarden.monitor.detectors import MonitorConfig
from biowarden.monitor.incidents import SUSPEND, Ladder, LogNotifier, SmtpNotifier
from biowarden.monitor.notify import describe, notifier_from_settings
from biowarden.monitor.service import MonitorService
from biowarden.registry import LOCAL_OPERATOR
from tests.monitor.fake_smtp import FakeSmtp, self_signed
from tests.registry.helpers import fast_hashing, make_registry

fast_hashing()
SECRET = "s3cret-relay-pass-9f2"
INST, RES, APP = "Northbridge Institute", "r@northbridge.ac.uk", "A-0001"


def _smtp_env(port: int, **extra: str) -> dict[str, str]:
    return {
        "BIOWARDEN_NOTIFIER": "smtp",
        "BIOWARDEN_SMTP_HOST": "127.0.0.1",
        "BIOWARDEN_SMTP_PORT": str(port),
        "BIOWARDEN_SMTP_FROM": "monitor@biobank.example",
        "BIOWARDEN_SMTP_TO": "security@biobank.example, dac@biobank.example",
        **extra,
    }


def test_the_log_sender_is_the_default():
    assert load_notifier_settings({}).kind == "log"
    assert isinstance(notifier_from_settings(load_notifier_settings({"BIOWARDEN_NOTIFIER": "log"})), LogNotifier)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"BIOWARDEN_NOTIFIER": "pigeon"}, "BIOWARDEN_NOTIFIER"),
        ({"BIOWARDEN_SMTP_HOST": ""}, "BIOWARDEN_SMTP_HOST is required"),
        ({"BIOWARDEN_SMTP_HOST": "relay host"}, "BIOWARDEN_SMTP_HOST"),
        ({"BIOWARDEN_SMTP_PORT": "smtp"}, "BIOWARDEN_SMTP_PORT"),
        ({"BIOWARDEN_SMTP_PORT": "70000"}, "BIOWARDEN_SMTP_PORT"),
        ({"BIOWARDEN_SMTP_FROM": ""}, "BIOWARDEN_SMTP_FROM is required"),
        ({"BIOWARDEN_SMTP_FROM": "monitor"}, "BIOWARDEN_SMTP_FROM"),
        ({"BIOWARDEN_SMTP_TO": "security@biobank.example, nobody"}, "BIOWARDEN_SMTP_TO"),
        ({"BIOWARDEN_SMTP_STARTTLS": "maybe"}, "BIOWARDEN_SMTP_STARTTLS"),
        ({"BIOWARDEN_SMTP_PASSWORD": SECRET}, "BIOWARDEN_SMTP_USERNAME and BIOWARDEN_SMTP_PASSWORD"),
        (
            {"BIOWARDEN_SMTP_STARTTLS": "false", "BIOWARDEN_SMTP_USERNAME": "u", "BIOWARDEN_SMTP_PASSWORD": SECRET},
            "only over STARTTLS",
        ),
        ({"BIOWARDEN_SMTP_STARTTLS": "false", "BIOWARDEN_SMTP_HOST": "relay.example"}, "loopback"),
        ({"BIOWARDEN_SMTP_CA_FILE": "/nonexistent/ca.pem"}, "BIOWARDEN_SMTP_CA_FILE"),
        ({"BIOWARDEN_SMTP_TIMEOUT": "-1"}, "BIOWARDEN_SMTP_TIMEOUT"),
    ],
)
def test_bad_settings_are_clear_errors_that_never_show_the_password(change, named):
    env = {**_smtp_env(2525), **change}
    with pytest.raises(ConfigError, match=named) as exc:
        load_notifier_settings(env)
    assert SECRET not in str(exc.value)


def test_settings_defaults_and_no_secret_in_repr(tmp_path):
    cert, _key = self_signed(tmp_path)
    env = {
        **_smtp_env(2525),
        "BIOWARDEN_SMTP_USERNAME": "monitor",
        "BIOWARDEN_SMTP_PASSWORD": SECRET,
        "BIOWARDEN_SMTP_CA_FILE": str(cert),
    }
    env.pop("BIOWARDEN_SMTP_PORT")
    settings = load_notifier_settings(env)
    assert (
        settings.smtp.port == 587
        and settings.smtp.starttls
        and settings.smtp.recipients
        == (
            "security@biobank.example",
            "dac@biobank.example",
        )
    )
    notifier = notifier_from_settings(settings)
    for text in (repr(settings), repr(notifier), describe(notifier)):
        assert SECRET not in text
    assert load_notifier_settings({**_smtp_env(2525), "BIOWARDEN_SMTP_STARTTLS": "false"}).smtp.port == 2525
    assert (
        load_notifier_settings(
            {k: v for k, v in _smtp_env(0).items() if k != "BIOWARDEN_SMTP_PORT"} | {"BIOWARDEN_SMTP_STARTTLS": "off"}
        ).smtp.port
        == 25
    )


def _denials_world(db):
    reg = make_registry(db)
    reg.add_institution(LOCAL_OPERATOR, INST)
    reg.add_researcher(LOCAL_OPERATOR, RES, INST)
    reg.add_application(LOCAL_OPERATOR, APP, INST, ["31", "34"], pi=RES)
    reg.approve_application(LOCAL_OPERATOR, APP)
    reg.add_account(LOCAL_OPERATOR, "res", ["researcher"], researcher=RES)
    who = reg.authenticate(reg.create_token(LOCAL_OPERATOR, username="res").token)
    for k in range(5):  # five requests for fields outside the scope within the hour
        assert not reg.check_access(who, APP, ["31", f"2100{k}"]).allow
    return reg


def _service(reg, notifier) -> MonitorService:
    return MonitorService(
        reg, config=MonitorConfig(cohort_size=1000), ladder=Ladder(steps=(SUSPEND,)), notifier=notifier
    )


def test_an_incident_is_mailed_through_starttls_with_credentials(db, tmp_path, caplog):
    cert = self_signed(tmp_path)
    reg = _denials_world(db)
    with FakeSmtp(cert, credentials=("monitor", SECRET)) as relay:
        env = _smtp_env(
            relay.port,
            BIOWARDEN_SMTP_USERNAME="monitor",
            BIOWARDEN_SMTP_PASSWORD=SECRET,
            BIOWARDEN_SMTP_CA_FILE=str(cert[0]),
        )
        notifier = notifier_from_settings(load_notifier_settings(env))
        with caplog.at_level(logging.DEBUG):
            out = _service(reg, notifier).scan(1000)
    assert out.notified == 1 and out.notify_failed == []
    assert [(a["kind"], a["target"], a["carried_out"]) for a in out.actions] == [(SUSPEND, RES, True)]
    assert relay.logins == [("monitor", SECRET, True)]  # the password went only over TLS
    sender, rcpts, msg, tls = relay.messages[0]
    assert tls and sender == "monitor@biobank.example"
    assert rcpts == ["security@biobank.example", "dac@biobank.example"]
    assert msg["Subject"] == f"biowarden incident 1 ({SUSPEND}) on researcher {RES}"
    assert "denied_burst" in msg.get_content()
    assert SECRET not in caplog.text


def test_a_relay_whose_certificate_is_not_trusted_is_refused(db, tmp_path):
    cert = self_signed(tmp_path)
    reg = _denials_world(db)
    with FakeSmtp(cert, credentials=("monitor", SECRET)) as relay:
        notifier = SmtpNotifier(
            "127.0.0.1", relay.port, "m@b.example", ["s@b.example"], "monitor", SECRET, ca_file=None
        )
        out = _service(reg, notifier).scan(1000)
    assert relay.logins == [] and relay.messages == []  # nothing sent, the password least of all
    assert len(out.notify_failed) == 1 and "SSLCertVerificationError" in out.notify_failed[0]
    assert out.actions[0]["carried_out"]  # the suspension stands whether or not the e-mail went


def test_a_relay_that_refuses_never_stops_the_ladder_and_never_logs_the_password(db, tmp_path, caplog):
    cert = self_signed(tmp_path)
    reg = _denials_world(db)
    with FakeSmtp(cert, credentials=("monitor", "another password")) as relay:
        env = _smtp_env(
            relay.port,
            BIOWARDEN_SMTP_USERNAME="monitor",
            BIOWARDEN_SMTP_PASSWORD=SECRET,
            BIOWARDEN_SMTP_CA_FILE=str(cert[0]),
        )
        with caplog.at_level(logging.DEBUG):
            out = _service(reg, notifier_from_settings(load_notifier_settings(env))).scan(1000)
    assert out.notified == 0 and "SMTPAuthenticationError" in out.notify_failed[0]
    assert out.actions[0]["carried_out"]
    assert {(s.scope, s.target) for s in reg.list_suspensions(LOCAL_OPERATOR, active_only=True)} == {
        ("researcher", RES)
    }
    assert "not sent" in caplog.text and SECRET not in caplog.text and SECRET not in str(out.to_dict())


def test_cli_scan_and_notify_test_use_the_configured_sender(home, db, monkeypatch):
    runner = CliRunner()
    monkeypatch.setenv("BIOWARDEN_DATABASE_URL", db.url)
    _denials_world(db)
    with FakeSmtp() as relay:
        for k, v in _smtp_env(relay.port, BIOWARDEN_SMTP_STARTTLS="false").items():
            monkeypatch.setenv(k, v)
        r = runner.invoke(cli, ["monitor", "notify-test"])
        assert r.exit_code == 0, r.output
        assert "sent through smtp 127.0.0.1" in r.output
        r = runner.invoke(cli, ["monitor", "scan", "--cohort-size", "1000"])
        assert r.exit_code == 0, r.output
    subjects = [m[2]["Subject"] for m in relay.messages]
    assert subjects[0] == "biowarden test notification"
    assert subjects[1:] == [f"biowarden incident 1 (notify) on researcher {RES}"]
    monkeypatch.setenv("BIOWARDEN_SMTP_PORT", "not-a-port")
    r = runner.invoke(cli, ["monitor", "scan", "--cohort-size", "1000"])
    assert r.exit_code == 2 and "BIOWARDEN_SMTP_PORT" in r.output
    monkeypatch.setenv("BIOWARDEN_SMTP_PORT", str(relay.port))  # the relay is gone: a clear failure, exit 1
    r = runner.invoke(cli, ["monitor", "notify-test", "--json"])
    assert r.exit_code == 1 and '"sent": false' in r.output
