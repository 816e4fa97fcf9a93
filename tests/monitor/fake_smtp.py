"""A small SMTP relay on the loopback for tests (stdlib only): EHLO, STARTTLS (with a self-signed
certificate made here), AUTH PLAIN, MAIL, RCPT, DATA, QUIT. It keeps the messages and logins it saw."""

from __future__ import annotations

import base64
import email
import email.policy
import ipaddress
import socketserver
import ssl
import threading
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 (its own CA) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "relay.pem", folder / "relay.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class _Handler(socketserver.BaseRequestHandler):
    def _send(self, line: str) -> None:
        self.sock.sendall((line + "\r\n").encode())

    def handle(self) -> None:
        srv: FakeSmtp = self.server  # type: ignore[assignment]
        self.sock = self.request
        rfile = self.sock.makefile("rb")
        tls = False
        sender, rcpts = "", []
        self._send("220 fake relay ESMTP")
        while True:
            raw = rfile.readline()
            if not raw:
                return
            cmd = raw.decode().rstrip("\r\n")
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                ext = ["fake relay"]
                if srv.context is not None and not tls:
                    ext.append("STARTTLS")
                if srv.credentials is not None and (tls or srv.context is None):
                    ext.append("AUTH PLAIN")
                for i, e in enumerate(ext):
                    self._send(("250-" if i < len(ext) - 1 else "250 ") + e)
            elif verb == "STARTTLS" and srv.context is not None:
                self._send("220 ready to start TLS")
                self.sock = srv.context.wrap_socket(self.sock, server_side=True)
                rfile = self.sock.makefile("rb")
                tls = True
            elif verb == "AUTH":
                parts = cmd.split()
                _, user, password = base64.b64decode(parts[2]).split(b"\0")
                srv.logins.append((user.decode(), password.decode(), tls))
                ok = (user.decode(), password.decode()) == srv.credentials
                self._send("235 authenticated" if ok else "535 authentication failed")
            elif verb == "MAIL":
                sender, rcpts = cmd.split(":", 1)[1].strip().strip("<>"), []
                self._send("250 ok")
            elif verb == "RCPT":
                rcpts.append(cmd.split(":", 1)[1].strip().strip("<>"))
                self._send("250 ok")
            elif verb == "DATA":
                self._send("354 end with <CRLF>.<CRLF>")
                lines = []
                while True:
                    line = rfile.readline()
                    if line in (b".\r\n", b""):
                        break
                    lines.append(line)
                srv.messages.append(
                    (sender, list(rcpts), email.message_from_bytes(b"".join(lines), policy=email.policy.default), tls)
                )
                self._send("250 queued")
            elif verb in ("RSET", "NOOP"):
                self._send("250 ok")
            elif verb == "QUIT":
                self._send("221 bye")
                return
            else:
                self._send("502 command not implemented")


class FakeSmtp(socketserver.ThreadingTCPServer):
    """``with FakeSmtp(...) as relay:`` serves on 127.0.0.1:relay.port in a thread until the block ends."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, cert: tuple[Path, Path] | None = None, credentials: tuple[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context: ssl.SSLContext | None = None
        if cert is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(str(cert[0]), str(cert[1]))
        self.credentials = credentials
        self.messages: list[tuple[str, list[str], Message, bool]] = []
        self.logins: list[tuple[str, str, bool]] = []
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def __enter__(self) -> FakeSmtp:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
