"""bench/python/echo_server.py — the Python echo servers of the echo comparison.

Modes: streams (asyncio.start_server, as examples/echo_server.cpp) or protocol (an
asyncio.Protocol that writes back what it receives — the fastest asyncio can do), on asyncio or
uvloop; with --tls CERTFILE KEYFILE, over TLS. Prints "Serving on 127.0.0.1:PORT" and serves
until killed.
Usage: echo_server.py PORT {streams|protocol} [--uvloop] [--tls CERTFILE KEYFILE]
"""
import asyncio
import ssl
import sys


async def handle_echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def main(port, mode, tls):
    loop = asyncio.get_running_loop()
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
    if mode == "streams":
        server = await asyncio.start_server(handle_echo, "127.0.0.1", port, ssl=ctx)
    else:
        server = await loop.create_server(EchoProtocol, "127.0.0.1", port, ssl=ctx)
    print(f"Serving on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    tls = None
    if "--tls" in sys.argv:
        at = sys.argv.index("--tls")
        tls = sys.argv[at + 1:at + 3]
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], tls))
