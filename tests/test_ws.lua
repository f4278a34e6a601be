-- tests/test_ws.lua: async.ws against Python's websockets as client and as
-- server (fragments, pings, close codes, 16 MB messages), lasync against
-- itself (many clients, broadcast), and hostile frames sent raw: bad
-- UTF-8 (1007), a message over the limit (1009), a peer that stops
-- answering pings, a peer that does not read (send waits).
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local H = require "rawhttp"
local http, ws = async.http, async.ws

local function echo_server(opts)
  local r = http.router()
  local ends = {}
  r:get("/ws", function(req)
    local w <close> = ws.upgrade(req, opts)
    for msg, kind in w:messages() do w:send(msg, kind) end
    ends[#ends + 1] = {select(2, w:recv())}
  end)
  r:get("/hello", function() return 200, "hello" end)
  local srv = http.serve{handler = r, error_log = function() end}
  return srv, select(2, srv:address()), ends
end

-- A masked client frame (RFC 6455 5.2) with a zero mask, built by hand so
-- the test can send what no library would.
local function frame(op, payload, fin)
  local n = #payload
  local len = n < 126 and string.char(0x80 | n) or string.pack(">BI2", 0x80 | 126, n)
  return string.char((fin == false and 0 or 0x80) | op) .. len .. "\0\0\0\0" .. payload
end

local function raw_upgrade(port)
  local s = H.connect(port)
  s:write("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
  local head = s:read_until("\r\n\r\n")
  lu.assertStrContains(head, "101 Switching Protocols")
  lu.assertStrContains(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
  return s
end

-- Reads one unmasked server frame: opcode, payload.
local function read_frame(s)
  local b1, b2 = string.byte(s:read_exactly(2), 1, 2)
  local n = b2 & 0x7f
  if n == 126 then n = string.unpack(">I2", s:read_exactly(2))
  elseif n == 127 then n = string.unpack(">I8", s:read_exactly(8)) end
  return b1 & 0x0f, s:read_exactly(n)
end

TestWsInterop = support.suite({}, 60)

function TestWsInterop:test_python_client_against_lasync_server()
  local srv <close>, port, ends = echo_server()
  local r = H.python([[
import asyncio, sys, websockets
async def main(port):
    out = []
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as w:
        await w.send("héllo"); out.append(await w.recv())
        await w.send(b"\x00\x01"); out.append(repr(await w.recv()))
        await w.send("x" * (16 * 1024 * 1024)); out.append(str(len(await w.recv())))
        await w.send(["frag1", "frag2", "frag3"]); out.append(await w.recv())
        await (await w.ping(b"p"))
        out.append("pong")
        await w.close(4000, "bye now")
        out.append("%d %s" % (w.close_code, w.close_reason))
    async def one(i):
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as w:
            await w.send(str(i)); return await w.recv()
    res = await asyncio.gather(*[one(i) for i in range(50)])
    out.append(str(sum(int(x) for x in res)))
    print("|".join(out))
asyncio.run(main(int(sys.argv[1])))
]], tostring(port))
  lu.assertEquals(r.stderr, "")
  lu.assertEquals(r.stdout, "héllo|b'\\x00\\x01'|16777216|frag1frag2frag3|pong|4000 bye now|1225\n")
  lu.assertEquals(ends[1], {4000, "bye now"})
  lu.assertEquals(#ends, 51)
end

function TestWsInterop:test_lasync_client_against_python_server()
  local proc = async.process.spawn{H.PYTHON, "-c", [[
import asyncio, websockets, sys
async def handler(w):
    async for m in w:
        if m == "fragments":
            await w.send(["a", "b", "c"])
        elif m == "close":
            await w.close(4001, "done here")
        else:
            await w.send(m)
async def main():
    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None, ping_interval=None) as s:
        print(s.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(30)
asyncio.run(main())
]], stdout = "pipe"}
  local port = tonumber(proc.stdout:read_line())
  local c <close> = ws.connect("ws://127.0.0.1:" .. port .. "/", {max_message = 32 * 1024 * 1024})
  c:send("hi")
  lu.assertEquals({c:recv()}, {"hi", "text"})
  c:send("\0\255", "binary")
  lu.assertEquals({c:recv()}, {"\0\255", "binary"})
  c:send("fragments")
  lu.assertEquals(c:recv(), "abc")
  local big = ("y"):rep(16 * 1024 * 1024)
  c:send(big)
  lu.assertEquals(#c:recv(), #big)
  c:ping("x")
  c:send("close")
  lu.assertEquals({c:recv()}, {nil, 4001, "done here"})
  proc:kill()
  proc:wait()
  proc.stdout:close()
  proc:close()
end

TestWsProtocol = support.suite({}, 30)

function TestWsProtocol:test_lasync_client_and_server_close_codes()
  local srv <close>, port, ends = echo_server()
  local c = ws.connect("ws://127.0.0.1:" .. port .. "/ws")
  c:send("one")
  lu.assertEquals(c:recv(), "one")
  c:close(4321, "my reason")
  lu.assertTrue(c:closed())
  lu.assertErrorMsgContains("closed", c.send, c, "x")
  while #ends == 0 do async.sleep(0.001) end
  lu.assertEquals(ends[1], {4321, "my reason"})
end

function TestWsProtocol:test_invalid_utf8_gets_1007_and_the_server_goes_on()
  local srv <close>, port = echo_server()
  local s <close> = raw_upgrade(port)
  s:write(frame(1, "ok"))
  lu.assertEquals({read_frame(s)}, {1, "ok"})
  s:write(frame(1, "bad \255\254"))
  local op, payload = read_frame(s)
  lu.assertEquals(op, 8)
  lu.assertEquals(string.unpack(">I2", payload), 1007)
  lu.assertEquals(H.request(port, H.get("/hello")).body, "hello")
end

function TestWsProtocol:test_message_over_the_limit_gets_1009()
  local srv <close>, port = echo_server({max_message = 1000})
  local s <close> = raw_upgrade(port)
  s:write(frame(2, ("x"):rep(600), false) .. frame(0, ("x"):rep(600)))   -- fragments add up
  local op, payload = read_frame(s)
  lu.assertEquals(op, 8)
  lu.assertEquals(string.unpack(">I2", payload), 1009)
  local c <close> = ws.connect("ws://127.0.0.1:" .. port .. "/ws")
  c:send(("z"):rep(1001))
  lu.assertEquals(select(2, c:recv()), 1009)
end

function TestWsProtocol:test_ping_timeout_ends_a_silent_peer()
  -- a "server" that completes the handshake and then never answers
  local srv = async.net.listen("127.0.0.1", 0, function(conn)
    local head = conn:read_until("\r\n\r\n")
    local key = head:match("Sec%-WebSocket%-Key: ([^\r]+)")
    conn:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
               "Sec-WebSocket-Accept: " .. require("async.core.ws").accept_key(key) .. "\r\n\r\n")
    pcall(function() while conn:read() do end end)   -- the client resets it
  end)
  local c <close> = ws.connect("ws://127.0.0.1:" .. select(2, srv:address()) .. "/",
                               {ping_interval = 0.02, ping_timeout = 0.05})
  local msg, code = c:recv()
  lu.assertNil(msg)
  lu.assertEquals(code, 1006)
  srv:shutdown()
end

function TestWsProtocol:test_send_waits_for_a_slow_reader()
  local sent, release = 0, async.future()
  local r = http.router()
  r:get("/flood", function(req)
    local w <close> = ws.upgrade(req)
    for _ = 1, 200 do
      w:send(("f"):rep(65536))
      sent = sent + 1
      local _, queued = w.sock:buffered()
      assert(queued <= 2 * 65536 + 100, "queued " .. queued)
    end
    release:await()
  end)
  local srv <close> = http.serve{handler = r}
  local c <close> = ws.connect("ws://127.0.0.1:" .. select(2, srv:address()) .. "/flood")
  c.sock:set_read_buffer(1)
  async.sleep(0.05)
  lu.assertTrue(sent < 200, "the sender was not held back: " .. sent)
  for _ = 1, 200 do lu.assertEquals(#c:recv(), 65536) end
  release:resolve()
  lu.assertEquals(sent, 200)
end

function TestWsProtocol:test_not_an_upgrade_and_misuse()
  local srv <close>, port = echo_server()
  lu.assertEquals(H.request(port, H.get("/ws")).status, 426)
  lu.assertEquals(H.request(port, H.get("/ws", "Upgrade: websocket\r\nConnection: upgrade\r\n")).status, 400)
  local c <close> = ws.connect("ws://127.0.0.1:" .. port .. "/ws")
  lu.assertErrorMsgContains("string expected", c.send, c, 42)
  lu.assertErrorMsgContains("kind must be", c.send, c, "x", "json")
  lu.assertErrorMsgContains("UTF-8", c.send, c, "\255")
  lu.assertErrorMsgContains("close code", c.close, c, 1005)
  lu.assertErrorMsgContains("ws:// or wss://", ws.connect, "http://x/")
  lu.assertErrorMsgContains("an HTTP request", ws.upgrade, {})
  local ok, err = pcall(ws.connect, "ws://127.0.0.1:" .. port .. "/hello")
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "instead of 101")
end

function TestWsProtocol:test_shutdown_says_going_away()
  local srv, port, ends = echo_server()
  local c <close> = ws.connect("ws://127.0.0.1:" .. port .. "/ws")
  c:send("x")
  lu.assertEquals(c:recv(), "x")
  local t = async.spawn(srv.shutdown, srv, 5)
  lu.assertEquals({c:recv()}, {nil, 1001, "the server is shutting down"})
  lu.assertEquals(t:await(), 0)                  -- the handler ended by itself
  lu.assertEquals(ends[1][1], 1001)
end

function TestWsProtocol:test_broadcast_to_many_clients()
  local clients, joined, sent_to = {}, 0, nil
  local r = http.router()
  r:get("/chat", function(req)
    local w <close> = ws.upgrade(req)
    clients[w] = true
    joined = joined + 1
    for msg in w:messages() do sent_to = ws.broadcast(clients, msg) end
    clients[w] = nil
  end)
  local srv <close> = http.serve{handler = r}
  local url = "ws://127.0.0.1:" .. select(2, srv:address()) .. "/chat"
  local conns = {}
  for i = 1, 100 do conns[i] = ws.connect(url) end
  while joined < 100 do async.sleep(0.001) end
  conns[1]:send("to all")
  for i = 1, 100 do lu.assertEquals(conns[i]:recv(), "to all") end
  lu.assertEquals(sent_to, 100)
  lu.assertErrorMsgContains("UTF-8", ws.broadcast, clients, "\255")
  lu.assertEquals(ws.broadcast({conns[1]}, "x"), 0)     -- a client's frames must be masked: skipped
  for i = 1, 100 do conns[i]:close() end
  while next(clients) do async.sleep(0.001) end
end

support.run(...)
