"""Free ports for the real servers tests and benches start (the servers themselves are supervised by
``algofs_jupyter.supervise``, the one child-process helper)."""

from __future__ import annotations

import socket


def free_ports(count: int, *, below: int = 65536, offset: int = 0) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago.

    With ``offset``, ``port + offset`` was free too (SeaweedFS puts its gRPC listeners at port + 10000).
    """
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            held.append(sock)
            if port in ports or port + offset >= below:
                continue
            if offset:
                try:
                    with socket.socket() as other:
                        other.bind(("127.0.0.1", port + offset))
                except OSError:
                    continue
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports
