# tests/http_peer.py: the aiohttp server the HTTP client tests talk to, on
# 127.0.0.1. Usage: http_peer.py cert key client_ca. Prints "ports A B TLS
# MTLS SILENT" once listening: two plain ports (so a test has two origins),
# a TLS one, one that requires a client certificate signed by client_ca,
# and one that accepts and never speaks; then serves until stdin closes.
# It counts connections and concurrent requests for the pool tests.
import asyncio, gzip, json, ssl, sys
from aiohttp import web

stats = {"max_requests": 0, "requests": 0, "max_conns": 0, "peers": set(), "total": 0}
runners = []
silent_conns = []
delay_conns = set()  # the silent port: accepts, never says a word

def open_conns():
    return sum(len(r.server.connections) for r in runners if r.server)

@web.middleware
async def count(request, handler):
    # Only /delay requests count as concurrent: handlers of other tests'
    # cancelled requests (/never) may still be winding down.
    if not request.path.startswith("/delay"):
        if request.path not in ("/stats", "/reset"):
            stats["total"] += 1
            stats["peers"].add(request.transport.get_extra_info("peername"))
        return await handler(request)
    stats["requests"] += 1
    stats["total"] += 1
    stats["max_requests"] = max(stats["max_requests"], stats["requests"])
    # Open connections among those that carried /delay requests since the
    # last reset (so other tests' idle pooled connections do not count).
    delay_conns.add(request.transport)
    stats["max_conns"] = max(stats["max_conns"], sum(1 for t in delay_conns if not t.is_closing()))
    stats["peers"].add(request.transport.get_extra_info("peername"))
    try:
        return await handler(request)
    finally:
        stats["requests"] -= 1

async def get_stats(request):
    return web.json_response({"max_requests": stats["max_requests"], "max_conns": stats["max_conns"],
                              "connections": len(stats["peers"]), "total": stats["total"]})

async def reset(request):
    stats.update(max_requests=0, max_conns=0, peers=set(), total=0)
    delay_conns.clear()
    return web.Response(text="ok")

async def size(request):
    n = int(request.match_info["n"])
    return web.Response(body=b"x" * n, content_type="application/octet-stream")

async def chunked(request):
    n = int(request.match_info["n"])
    r = web.StreamResponse()
    r.enable_chunked_encoding()
    await r.prepare(request)
    for i in range(n):
        await r.write(b"line %d\n" % i)
    await r.write_eof()
    return r

async def slow(request):
    n = int(request.match_info["n"])
    r = web.StreamResponse()
    r.content_length = n
    await r.prepare(request)
    for i in range(n):
        await asyncio.sleep(0.1)
        await r.write(b"s")
    return r

async def delay(request):
    await asyncio.sleep(int(request.match_info["ms"]) / 1000)
    return web.Response(text="done")

async def echo(request):
    body = await request.read()
    return web.json_response({"method": request.method, "path": request.path,
                              "query": dict(request.query), "headers": dict(request.headers),
                              "body": body.decode("utf-8", "replace")})

async def redirect(request):
    code = int(request.match_info["code"])
    to = request.query.get("to", "/echo")
    raise {301: web.HTTPMovedPermanently, 302: web.HTTPFound, 303: web.HTTPSeeOther,
           307: web.HTTPTemporaryRedirect, 308: web.HTTPPermanentRedirect}[code](to)

async def loop_redirect(request):
    raise web.HTTPFound("/loop")

async def cookie_set(request):
    r = web.Response(text="set")
    for k, v in request.query.items():
        r.set_cookie(k, v)
    return r

async def cookie_get(request):
    return web.json_response(dict(request.cookies))

async def gz(request):
    data = b"compressible " * 1000
    return web.Response(body=gzip.compress(data), headers={"Content-Encoding": "gzip"},
                        content_type="text/plain")

async def close_mid_body(request):
    r = web.StreamResponse()
    r.content_length = 100000
    await r.prepare(request)
    await r.write(b"y" * 1000)
    request.transport.close()
    return r

async def never(request):
    await asyncio.sleep(3600)

async def close_after(request):
    return web.Response(text="bye", headers={"Connection": "close"})

async def headers(request):
    r = web.Response(text="h")
    r.headers.add("X-Multi", "one")
    r.headers.add("X-Multi", "two")
    r.set_cookie("a", "1")
    r.set_cookie("b", "2")
    return r

async def status(request):
    return web.Response(status=int(request.match_info["code"]), text="status")

async def big(request):
    n = int(request.match_info["n"])
    r = web.StreamResponse()
    r.content_length = n
    await r.prepare(request)
    sent, chunk = 0, b"z" * 65536
    while sent < n:
        k = min(len(chunk), n - sent)
        await r.write(chunk[:k])
        sent += k
        stats["big_sent"] = sent
    return r

async def big_sent(request):
    return web.json_response({"sent": stats.get("big_sent", 0)})

async def main():
    app = web.Application(middlewares=[count])
    app.add_routes([web.get("/stats", get_stats), web.get("/reset", reset),
        web.get("/size/{n}", size), web.get("/chunked/{n}", chunked), web.get("/slow/{n}", slow),
        web.get("/delay/{ms}", delay), web.route("*", "/echo", echo),
        web.route("*", "/redirect/{code}", redirect), web.get("/loop", loop_redirect),
        web.get("/cookie/set", cookie_set), web.get("/cookie/get", cookie_get),
        web.get("/gzip", gz), web.get("/close-mid-body", close_mid_body), web.get("/never", never),
        web.get("/close-after", close_after), web.get("/headers", headers),
        web.get("/status/{code}", status), web.get("/big/{n}", big), web.get("/big-sent", big_sent)])
    ports = []
    for i in range(2):
        r = web.AppRunner(app, handle_signals=False)
        await r.setup()
        s = web.TCPSite(r, "127.0.0.1", 0)
        await s.start()
        runners.append(r)
        ports.append(s._server.sockets[0].getsockname()[1])
    if len(sys.argv) > 2:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(sys.argv[1], sys.argv[2])
        r = web.AppRunner(app, handle_signals=False)
        await r.setup()
        s = web.TCPSite(r, "127.0.0.1", 0, ssl_context=ctx)
        await s.start()
        runners.append(r)
        ports.append(s._server.sockets[0].getsockname()[1])
    if len(sys.argv) > 3:   # a TLS port that requires a client certificate signed by argv[3]
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(sys.argv[1], sys.argv[2])
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(sys.argv[3])
        r = web.AppRunner(app, handle_signals=False)
        await r.setup()
        s = web.TCPSite(r, "127.0.0.1", 0, ssl_context=ctx)
        await s.start()
        runners.append(r)
        ports.append(s._server.sockets[0].getsockname()[1])
    silent = await asyncio.start_server(lambda r, w: silent_conns.append(w), "127.0.0.1", 0)
    ports.append(silent.sockets[0].getsockname()[1])
    print("ports", *ports, flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), lambda: done.set() if not sys.stdin.buffer.read1(1) else None)
    await done.wait()

asyncio.run(main())
