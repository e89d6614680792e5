#!/usr/bin/env python3
"""A real SMTP server for consentry's tests, on Debian's aiosmtpd.

Listens on 127.0.0.1 (a free port) and requires STARTTLS before MAIL; with
--user and --password it also requires AUTH (PLAIN or LOGIN) with exactly
those. Prints "PORT <n>" on stdout once listening. Each accepted message is
written into --spool as NNNNNN.eml (the raw bytes) and NNNNNN.json (envelope
sender, envelope recipients, decoded Subject and decoded text body), each
written under a temporary name and renamed, the .json last.

Stops on SIGTERM or when its stdin closes (the harness holds it open), so it
never outlives the test that started it.

Driven by tests/src/smtp.rs; not a tool of its own.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Spool:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    def _write(self, name, data):
        tmp = os.path.join(self.directory, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self.directory, name))

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        # The CRLF before the final "." ends the last line on the wire: it is
        # DATA framing, not content, so the body decodes to what was sent.
        content = raw[:-2] if raw.endswith(b"\r\n") else raw
        message = email.message_from_bytes(content, policy=email.policy.default)
        part = message.get_body(preferencelist=("plain",))
        body = part.get_content() if part is not None else ""
        record = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(message.get("subject", "")),
            "body": body.replace("\r\n", "\n"),
            "tls": session.ssl is not None,
            "auth": session.authenticated,
        }
        self.count += 1
        stem = "%06d" % self.count
        self._write(stem + ".eml", raw)
        self._write(stem + ".json", json.dumps(record, ensure_ascii=False).encode("utf-8"))
        return "250 2.0.0 Message accepted"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode("utf-8")
            and auth_data.password == password.encode("utf-8")
        )
        return AuthResult(success=ok, handled=False)

    return check


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", required=True, help="server certificate chain (PEM)")
    parser.add_argument("--key", required=True, help="server private key (PEM)")
    parser.add_argument("--spool", required=True, help="directory for received messages")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    handler = Spool(args.spool)
    options = dict(
        hostname="localhost",  # no DNS look-up for the greeting
        tls_context=context,
        require_starttls=True,
        timeout=60,
    )
    if args.user is not None:
        options.update(
            auth_required=True,
            auth_require_tls=True,
            authenticator=authenticator(args.user, args.password),
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(lambda: SMTP(handler, **options), host="127.0.0.1", port=0)
    )
    port = server.sockets[0].getsockname()[1]

    def on_stdin():
        if not os.read(sys.stdin.fileno(), 4096):
            loop.stop()

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    print("PORT %d" % port, flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
