"""A raw HTTP/1.1 exchange on a socket, for requests no well-behaved client library would send
(malformed multipart, bodies cut short, chunked uploads of 100 000 fields)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable


def exchange(port: int, head: list[bytes], body: Iterable[bytes], *, chunked: bool = False) -> tuple[int, bytes]:
    """Send ``head`` (request line and headers) and ``body`` to 127.0.0.1:``port``; (status, body) of
    the answer. The body is sent by a second thread, so that an answer given before the body was read
    to its end (a 413) is received like any other; every wait is bounded by the socket timeout."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=60)

    def send() -> None:
        with contextlib.suppress(OSError):  # the server answered and closed before the whole body was sent
            conn.sendall(b"\r\n".join(head) + b"\r\n\r\n")
            for chunk in body:
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                conn.sendall(b"0\r\n\r\n")

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    received = bytearray()
    try:
        while data := conn.recv(65536):
            received += data
    except ConnectionResetError:
        pass
    finally:
        sender.join(60)
        conn.close()
    header, _, rest = bytes(received).partition(b"\r\n\r\n")
    assert header.startswith(b"HTTP/1.1 "), f"no HTTP answer: {bytes(received)[:200]!r}"
    lines = header.decode("latin-1").split("\r\n")
    length = next((int(v) for k, _, v in (line.partition(": ") for line in lines[1:])
                   if k.lower() == "content-length"), len(rest))
    return int(lines[0].split()[1]), rest[:length]
