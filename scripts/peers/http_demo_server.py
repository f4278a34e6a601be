# scripts/peers/http_demo_server.py: the local server the HTTP client
# examples talk to (aiohttp, Debian's python3-aiohttp), on 127.0.0.1.
# Prints "port N" once listening; ends when its stdin closes.
#   /page/N      a ~2 KB page; every 50th page answers 503 the first time,
#                every 97th is slow the first time (a timeout to retry)
#   /api/todos   a JSON API: GET list, POST create, GET/PATCH/DELETE /api/todos/ID
import asyncio, json, sys
from aiohttp import web

seen = set()
todos, next_id = {}, [1]

async def page(request):
    n = int(request.match_info["n"])
    first = n not in seen
    seen.add(n)
    if first and n % 50 == 0:
        return web.Response(status=503, text="busy, try again")
    if first and n % 97 == 0:
        await asyncio.sleep(5)
    body = ("<html><body><h1>page %d</h1>" % n) + ("<p>lorem ipsum dolor</p>" * 85) + "</body></html>"
    return web.Response(text=body, content_type="text/html")

async def list_todos(request):
    done = request.query.get("done")
    items = [t for t in todos.values() if done is None or str(t["done"]).lower() == done]
    return web.json_response(items)

async def create(request):
    data = await request.json()
    if not isinstance(data.get("title"), str) or not data["title"]:
        return web.json_response({"error": "title is required"}, status=422)
    t = {"id": next_id[0], "title": data["title"], "done": False, "tags": data.get("tags", [])}
    todos[t["id"]] = t
    next_id[0] += 1
    return web.json_response(t, status=201)

def find(request):
    t = todos.get(int(request.match_info["id"]))
    if t is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "no such todo"}), content_type="application/json")
    return t

async def get_one(request):
    return web.json_response(find(request))

async def patch(request):
    t = find(request)
    t.update(await request.json())
    return web.json_response(t)

async def delete(request):
    t = find(request)
    del todos[t["id"]]
    return web.Response(status=204)

async def main():
    app = web.Application()
    app.add_routes([web.get("/page/{n}", page), web.get("/api/todos", list_todos),
                    web.post("/api/todos", create), web.get("/api/todos/{id}", get_one),
                    web.patch("/api/todos/{id}", patch), web.delete("/api/todos/{id}", delete)])
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print("port", site._server.sockets[0].getsockname()[1], flush=True)
    done = asyncio.Event()
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(),
        lambda: done.set() if not sys.stdin.buffer.read1(1) else None)
    await done.wait()

asyncio.run(main())
