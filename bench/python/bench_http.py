"""bench/python/bench_http.py: the keep-alive hello-world on aiohttp with uvloop, for
bench/http_run.py."""
import asyncio, socket, sys
import uvloop
from aiohttp import web

async def hello(request):
    return web.Response(text="hello world\n")

async def main():
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    print("port", sock.getsockname()[1], flush=True)
    await asyncio.Event().wait()

uvloop.install()
asyncio.run(main())
