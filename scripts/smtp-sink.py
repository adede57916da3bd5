#!/usr/bin/python3
"""A local SMTP sink for the tests and the demo: accepts every message and writes it to a
folder, one file per message: an `X-Rcpt-To:` line, the message as received, then its text
body decoded (so a reader need not undo quoted-printable or base64).

    smtp-sink.py 127.0.0.1:2525 /tmp/storefront-smtp-sink

Uses aiosmtpd (Debian's python3-aiosmtpd, installed by scripts/ensure-smtp-sink)."""
import email
import email.policy
import os
import signal
import sys
import time
import uuid

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, folder):
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time_ns()}-{uuid.uuid4().hex}.eml"
        # The folder may have been cleaned out of /tmp since the sink started.
        os.makedirs(self.folder, exist_ok=True)
        tmp = os.path.join(self.folder, "." + name)
        with open(tmp, "wb") as f:
            f.write(("X-Rcpt-To: " + ", ".join(envelope.rcpt_tos) + "\r\n").encode())
            raw = envelope.original_content or envelope.content
            f.write(raw)
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            part = msg.get_body(("plain",))
            if part is not None:
                f.write(b"\r\n--- decoded text body ---\r\n")
                f.write(part.get_content().encode())
        # Renamed into place, so a reader never sees half a message.
        os.rename(tmp, os.path.join(self.folder, name))
        return "250 OK"


def main():
    addr, folder = sys.argv[1], sys.argv[2]
    host, port = addr.rsplit(":", 1)
    os.makedirs(folder, exist_ok=True)
    controller = Controller(Sink(folder), hostname=host, port=int(port))
    controller.start()
    print(f"smtp-sink: listening on {addr}, writing to {folder}", flush=True)
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    controller.stop()


if __name__ == "__main__":
    main()
