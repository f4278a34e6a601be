"""echo: a TCP echo server with asyncio streams (start_server, read, write, drain), on
asyncio's own loop or on uvloop (argument "uvloop"). bench/echo_run.py reads the
"port N" line and drives it."""
import asyncio
import sys


async def handle(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    if "uvloop" in sys.argv[1:]:
        import uvloop
        uvloop.install()
    asyncio.run(main())
