"""bench/python/bench_ws.py: every message a client sends goes to every connected
client (bench/ws_run.py); websockets on uvloop."""
import asyncio
import uvloop
import websockets

peers = set()

async def handler(ws):
    peers.add(ws)
    try:
        async for msg in ws:
            websockets.broadcast(peers, msg)
    finally:
        peers.discard(ws)

async def main():
    async with websockets.serve(handler, "127.0.0.1", 0, ping_interval=None) as s:
        print("port", s.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

uvloop.install()
asyncio.run(main())
