"""A network link in front of a local host: counts the bytes a visit costs and can make them slow.

A TCP proxy on loopback, so everything the browser fetches (the page, its worker, its service
worker) passes through it, whatever the browser's own throttling covers. Every byte sent to the
browser is counted; with a rate, they share one link of that many bits a second, and with a
round-trip time each chunk arrives half of it later in each direction.
"""

import asyncio
import socket
import threading
import time
from dataclasses import dataclass

CHUNK = 16 * 1024


@dataclass(frozen=True)
class LinkSpeed:
    name: str
    bits_per_second: float | None  # None: as fast as loopback
    round_trip_seconds: float = 0.0


LOCALHOST = LinkSpeed("localhost", None)
LINKS = (LOCALHOST, LinkSpeed("10 Mbit/s, 40 ms", 10e6, 0.040),
         LinkSpeed("1.6 Mbit/s, 150 ms", 1.6e6, 0.150))


class Link:
    """`Link(upstream_port, speed)` listens on 127.0.0.1:`port` until `close()`."""

    def __init__(self, upstream_port: int, speed: LinkSpeed = LOCALHOST) -> None:
        self.upstream_port, self.speed = upstream_port, speed
        self.received = 0  # bytes sent to the browser
        self._free_at = 0.0  # when the shared downlink is free again
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(lambda loop, context: None)  # a browser hung up: fine
        listener = socket.create_server(("127.0.0.1", 0))
        self.port = listener.getsockname()[1]
        listening = threading.Event()

        def run() -> None:  # the loop lives in its own thread (a caller may run one of its own)
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._connect, sock=listener))
            listening.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        listening.wait(10)

    def reset(self) -> int:
        """The bytes counted so far, and start counting again."""
        received, self.received = self.received, 0
        return received

    def close(self) -> None:
        async def shut() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shut(), self._loop)
        self._thread.join(timeout=5)

    async def _connect(self, client_reader: asyncio.StreamReader,
                       client_writer: asyncio.StreamWriter) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(self._pipe(client_reader, writer, down=False),
                             self._pipe(reader, client_writer, down=True),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    down: bool) -> None:
        """Forward one direction: each chunk is due half a round trip after it was read, and
        what goes down also waits for its turn on the shared link, and is counted."""
        due: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while (item := await due.get()) is not None:
                at, chunk = item
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                writer.write(chunk)
                await writer.drain()

        delivering = asyncio.ensure_future(deliver())
        try:
            while chunk := await reader.read(CHUNK):
                if down:
                    self.received += len(chunk)
                due.put_nowait((self._due(len(chunk) if down else 0), chunk))
            due.put_nowait(None)
            await delivering
        except (ConnectionError, OSError):
            pass
        finally:
            delivering.cancel()
            writer.close()

    def _due(self, size: int) -> float:
        now = time.monotonic()
        if self.speed.bits_per_second and size:
            self._free_at = max(self._free_at, now) + size * 8 / self.speed.bits_per_second
            now = self._free_at
        return now + self.speed.round_trip_seconds / 2
