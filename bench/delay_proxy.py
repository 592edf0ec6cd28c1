"""A TCP proxy on 127.0.0.1 that delays every request by a fixed time: a far-away API, on loopback.

    python bench/delay_proxy.py --target 127.0.0.1:8731 --delay-ms 20     # prints the port it listens on

Each time a client starts sending after the server has answered (a new request on a kept-alive
connection, or the first bytes of a new connection), those bytes are held ``--delay-ms`` before they are
forwarded: the first byte of every response arrives that much later, as behind a link with that round
trip time. Bytes of one request (headers, then an upload body) are delayed once; responses stream at
loopback speed. Connection set-up is not delayed (a real link would add one more round trip there).

Only 127.0.0.1: the proxy refuses any other target.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

CHUNK = 256 << 10


async def _pipe_client_to_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                 turn: dict[str, bool], delay: float) -> None:
    try:
        while data := await reader.read(CHUNK):
            if turn["new"]:
                turn["new"] = False
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def _pipe_server_to_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                 turn: dict[str, bool]) -> None:
    try:
        while data := await reader.read(CHUNK):
            turn["new"] = True  # the server answered: the client's next bytes are a new request
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def serve(target_port: int, delay: float, port: int = 0) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        turn = {"new": True}
        await asyncio.gather(_pipe_client_to_server(client_reader, server_writer, turn, delay),
                             _pipe_server_to_client(server_reader, client_writer, turn),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="127.0.0.1:PORT")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        print("only 127.0.0.1 targets", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(int(port), args.delay_ms / 1000, args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
