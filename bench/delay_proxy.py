#!/usr/bin/env python3
"""bench/delay_proxy.py: a loopback TCP proxy adding a fixed delay each way.

    delay_proxy.py --listen PORT --to PORT [--delay-ms 5]

Listens on 127.0.0.1:PORT and forwards every connection to 127.0.0.1:TO.
Each chunk read from one side is written to the other DELAY ms after it
was read (5 by default), so a round trip through the proxy takes twice
that (10 ms) on top of what it took without it.  Chunks are written in the
order they were read, and reading goes on while earlier chunks wait, so
the delay adds latency without taking throughput: a pipelined client keeps
its pace, a client that waits for each reply pays the round trip.  An
end-of-file is passed on (as a half close) after the same delay.

It is bench/run's stand-in for netem, which this kernel lacks.  asyncio's
timers wake up to a millisecond late (epoll counts in milliseconds), so the
delay is DELAY to DELAY + 1 ms.  Python stdlib only; it runs until killed
and prints "listening on PORT" once it accepts connections.
"""

import argparse
import asyncio
import socket

CHUNK = 65536
QUEUED = 256  # chunks waiting at most per direction: 16 MiB, then back-pressure


def nodelay(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def pipe(reader, writer, delay):
    """Copy reader to writer, each chunk `delay` seconds after it came."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue(QUEUED)

    async def pump():
        while True:
            try:
                data = await reader.read(CHUNK)
            except (ConnectionError, OSError):
                data = b""
            await queue.put((loop.time() + delay, data))
            if not data:
                return

    async def deliver():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(pump(), deliver())
    except (ConnectionError, OSError):
        writer.close()


async def serve(args):
    delay = args.delay_ms / 1000.0

    async def on_client(creader, cwriter):
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1",
                                                             args.to)
        except OSError:
            cwriter.close()
            return
        nodelay(cwriter)
        nodelay(swriter)
        try:
            await asyncio.gather(pipe(creader, swriter, delay),
                                 pipe(sreader, cwriter, delay))
        finally:
            cwriter.close()
            swriter.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", args.listen)
    print("listening on %d" % args.listen, flush=True)
    async with server:
        await server.serve_forever()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--to", type=int, required=True)
    p.add_argument("--delay-ms", type=float, default=5.0)
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
