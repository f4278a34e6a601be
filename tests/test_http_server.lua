-- tests/test_http_server.lua: async.http.serve and the router with real
-- clients on 127.0.0.1 (curl, Python aiohttp, a raw socket), HTTP/1.1's
-- connection rules (keep-alive, pipelining, 100-continue, HEAD, chunked),
-- every limit answered with its status while a good client goes on being
-- served, handler failures, the connection cap and graceful shutdown.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local H = require "rawhttp"
local http = async.http

local function app()
  local r = http.router()
  r:get("/hello", function() return 200, "hello\n" end)
  r:get("/users/:id", function(req) return 200, "user " .. req.params.id end)
  r:get("/files/*rest", function(req) return 200, req.params.rest end)
  r:get("/query", function(req) return 200, tostring(req.query.a) .. "|" .. tostring(req.query.b) end)
  r:post("/echo", function(req) return 200, req:body(), {["X-Len"] = #req:body()} end)
  r:put("/users/:id", function(req) return {status = 201, body = "put " .. req.params.id} end)
  r:get("/stream", function(req, res)
    res:start(200, {["Content-Type"] = "text/plain"})
    for i = 1, 3 do res:write("part" .. i .. ";") end
    res:finish()
  end)
  r:get("/headers", function(req)
    return 200, req.headers["X-Thing"] .. "," .. req.headers["x-thing"] .. "," .. req:header("X-THING")
  end)
  return r
end

local function serve(handler, extra)
  local opts = {port = 0, handler = handler or app(), error_log = function() end}
  for k, v in pairs(extra or {}) do opts[k] = v end
  local srv = http.serve(opts)
  return srv, select(2, srv:address())
end

-- A keep-alive connection that must go on being answered while a test
-- throws bad input at the server on other connections.
local function good_client(port)
  local s = H.connect(port)
  return function()
    s:write(H.get("/hello"))
    local r = H.read_response(s)
    lu.assertEquals(r.status, 200)
    lu.assertEquals(r.body, "hello\n")
  end, s
end

TestRouting = support.suite({}, 20)

function TestRouting:test_routes_params_query_and_defaults()
  local srv <close>, port = serve()
  local function get(path) return H.request(port, H.get(path)) end
  lu.assertEquals(get("/hello").body, "hello\n")
  lu.assertEquals(get("/users/42").body, "user 42")
  lu.assertEquals(get("/users/a%20b").body, "user a b")
  lu.assertEquals(get("/files/a/b/c.txt").body, "a/b/c.txt")
  lu.assertEquals(get("/query?a=1&b=x%20y").body, "1|x y")
  lu.assertEquals(get("/query").body, "nil|nil")
  local r = get("/nowhere")
  lu.assertEquals(r.status, 404)
  r = H.request(port, "DELETE /users/1 HTTP/1.1\r\nHost: t\r\n\r\n")
  lu.assertEquals(r.status, 405)
  lu.assertEquals(r.headers.allow, "GET, HEAD, PUT")
  r = H.request(port, "PUT /users/7 HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
  lu.assertEquals(r.status, 201)
  lu.assertEquals(r.body, "put 7")
  lu.assertEquals(get("/stream").body, "part1;part2;part3;")
  r = H.request(port, H.get("/headers", "X-Thing: v\r\n"))
  lu.assertEquals(r.body, "v,v,v")
  lu.assertNotNil(r.headers.date)
end

function TestRouting:test_head_has_the_length_and_no_body()
  local srv <close>, port = serve()
  local s <close> = H.connect(port)
  s:write("HEAD /hello HTTP/1.1\r\n\r\n" .. H.get("/hello"))
  local r = H.read_response(s, true)
  lu.assertEquals(r.status, 200)
  lu.assertEquals(r.headers["content-length"], "6")
  lu.assertEquals(H.read_response(s).body, "hello\n")   -- no stray body between them
end

function TestRouting:test_middleware_runs_in_order_and_can_answer()
  local log = {}
  local r = http.router()
  r:use(function(req, nxt)
    log[#log + 1] = "log " .. req.path
    local status, body = nxt()
    log[#log + 1] = "status " .. tostring(status)
    return status, body
  end)
  r:use(function(req, nxt)
    if req.headers.authorization ~= "Bearer ok" then return 401, "no\n" end
    return nxt()
  end)
  r:get("/secret", function() return 200, "s3cret" end)
  local srv <close>, port = serve(r)
  lu.assertEquals(H.request(port, H.get("/secret")).status, 401)
  local res = H.request(port, H.get("/secret", "Authorization: Bearer ok\r\n"))
  lu.assertEquals(res.body, "s3cret")
  lu.assertEquals(log, {"log /secret", "status 401", "log /secret", "status 200"})
end

function TestRouting:test_router_misuse_raises()
  local r = http.router()
  lu.assertErrorMsgContains("method must be", r.route, r, "get", "/", print)
  lu.assertErrorMsgContains("pattern must be", r.get, r, "x", print)
  lu.assertErrorMsgContains("handler must be", r.get, r, "/x", 42)
  lu.assertErrorMsgContains("bad parameter name", r.get, r, "/x/:1a", print)
  r:get("/x", print)
  lu.assertErrorMsgContains("already routed", r.get, r, "/x", print)
  lu.assertErrorMsgContains("middleware must be", r.use, r, "x")
  lu.assertErrorMsgContains("options table", http.serve, 1)
  lu.assertErrorMsgContains("handler must be", http.serve, {})
  lu.assertErrorMsgContains("unknown limit", http.serve, {handler = print, limits = {max_x = 1}})
  lu.assertErrorMsgContains("positive number", http.serve, {handler = print, limits = {max_body = -1}})
  lu.assertErrorMsgContains("status must be", http.error, 200)
end

function TestRouting:test_json_bodies_and_answers()
  local r = http.router()
  r:post("/sum", function(req)
    local v = req:json()
    return {status = 201, json = {sum = v.a + v.b, list = async.json.array()}}
  end)
  local srv <close>, port = serve(r)
  local s <close> = H.connect(port)
  local body = '{"a": 2, "b": 40}'
  s:write("POST /sum HTTP/1.1\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
  local res = H.read_response(s)
  lu.assertEquals(res.status, 201)
  lu.assertEquals(res.headers["content-type"], "application/json")
  lu.assertEquals(async.json.decode(res.body).sum, 42)
  lu.assertStrContains(res.body, '"list":[]')
  s:write("POST /sum HTTP/1.1\r\nContent-Length: 5\r\n\r\n{bad}")
  res = H.read_response(s)
  lu.assertEquals(res.status, 400)
  lu.assertStrContains(res.body, "not valid JSON")
  s:write("POST /sum HTTP/1.1\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
  lu.assertEquals(H.read_response(s).status, 201)      -- the same connection goes on
end

function TestRouting:test_native_types_survive_misuse()
  local hp = require "async.core.http_parser"
  local p = hp.new()
  lu.assertErrorMsgContains("lasync.HttpParser expected", p.execute, {}, "x")
  lu.assertErrorMsgContains("string expected", p.execute, p, nil)
  lu.assertErrorMsgContains("position out of range", p.execute, p, "abc", 9)
  lu.assertErrorMsgContains("position out of range", p.execute, p, "abc", 0)
  lu.assertErrorMsgContains("limits.max_body", hp.new, {max_body = "x"})
  lu.assertErrorMsgContains("table expected", hp.new, {}, 42)
  lu.assertEquals(select(2, p:execute("BAD\r\n\r\n")), 400)
  lu.assertEquals(select(2, p:execute("GET / HTTP/1.1\r\n\r\n")), 400)   -- a failed parser stays failed
  local ws = require "async.core.ws"
  local w = ws.new(true)
  lu.assertErrorMsgContains("string expected", w.feed, w, {})
  lu.assertErrorMsgContains("invalid option", w.send, w, "jpeg", "x")
  lu.assertErrorMsgContains("at most 125", w.send, w, "ping", ("x"):rep(200))
  lu.assertErrorMsgContains("close code", w.close, w, 999)
  lu.assertErrorMsgContains("lasync.WsCore expected", w.output, {})
  lu.assertErrorMsgContains("must be positive", ws.new, true, 0)
  getmetatable(w).__gc(w)                                -- closed: every method refuses
  lu.assertErrorMsgContains("closed WebSocket", w.feed, w, "x")
  getmetatable(w).__gc(w)
  local tls = require "async.core.tls"
  lu.assertErrorMsgContains("certificate /nope", tls.server_context, "/nope", "/nope")
  local ctx = tls.client_context(false)
  local sess = ctx:session("localhost")
  lu.assertErrorMsgContains("string expected", sess.feed, sess, nil)
  lu.assertEquals(sess:handshake(), false)               -- wants the server's answer
  lu.assertTrue(#sess:output() > 0)                      -- the ClientHello
  sess:free()
  lu.assertErrorMsgContains("session is closed", sess.read, sess)
  sess:free()
end

TestProtocol = support.suite({}, 30)

function TestProtocol:test_pipelined_requests_are_answered_in_order()
  local gate = async.future()
  local r = http.router()
  r:get("/slow", function() gate:await(); return 200, "slow" end)
  r:get("/fast", function() return 200, "fast" end)
  local srv <close>, port = serve(r)
  local s <close> = H.connect(port)
  s:write(H.get("/slow") .. H.get("/fast") .. "POST /fast HTTP/1.1\r\nContent-Length: 0\r\n\r\n" ..
          H.get("/fast"))
  async.sleep(0.01)
  gate:resolve()
  lu.assertEquals(H.read_response(s).body, "slow")
  lu.assertEquals(H.read_response(s).body, "fast")
  lu.assertEquals(H.read_response(s).status, 405)
  lu.assertEquals(H.read_response(s).body, "fast")
end

function TestProtocol:test_keep_alive_http10_and_connection_close()
  local srv <close>, port = serve()
  local s <close> = H.connect(port)
  for _ = 1, 3 do
    s:write(H.get("/hello"))
    lu.assertEquals(H.read_response(s).status, 200)
  end
  s:write("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
  lu.assertEquals(H.read_response(s).headers.connection, "keep-alive")
  s:write(H.get("/hello", "Connection: close\r\n"))
  lu.assertEquals(H.read_response(s).headers.connection, "close")
  lu.assertNil(s:read())                            -- the server closed it
  local s2 <close> = H.connect(port)
  s2:write("GET /stream HTTP/1.0\r\n\r\n")         -- no chunked for 1.0: close-delimited
  local r = H.read_response(s2)
  lu.assertEquals(r.body, "part1;part2;part3;")
  lu.assertNil(r.headers["transfer-encoding"])
end

function TestProtocol:test_chunked_upload_and_expect_continue_raw()
  local srv <close>, port = serve()
  local s <close> = H.connect(port)
  s:write("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
  lu.assertEquals(H.read_response(s).status, 100)
  s:write("3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
  local r = H.read_response(s)
  lu.assertEquals(r.body, "abcdefg")
  lu.assertEquals(r.headers["x-len"], "7")
end

function TestProtocol:test_unread_body_is_skipped_or_closes()
  local srv <close>, port = serve()
  local s <close> = H.connect(port)
  -- a body the handler ignores is read past: the next request works
  s:write("GET /hello HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde" .. H.get("/hello"))
  lu.assertEquals(H.read_response(s).status, 200)
  lu.assertEquals(H.read_response(s).body, "hello\n")
  -- 100-continue never sent: the server answers without the body and closes
  s:write("GET /hello HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
  lu.assertEquals(H.read_response(s).headers.connection, "close")
end

function TestProtocol:test_curl_keepalive_pipelining_chunked_expect()
  local srv <close>, port = serve()
  local base = "http://127.0.0.1:" .. port
  local r = H.run{"curl", "-sv", "--http1.1", base .. "/hello", base .. "/users/9"}
  lu.assertEquals(r.stdout, "hello\nuser 9")
  lu.assertStrContains(r.stderr, "Re-using existing connection")
  local big = ("0123456789abcdef"):rep(4096)     -- 64 KB: curl sends Expect
  local file = os.tmpname()
  support.write_file(file, big)
  r = H.run{"curl", "-sv", "--http1.1", "-H", "Transfer-Encoding: chunked", "-H", "Expect: 100-continue",
            "--data-binary", "@" .. file, base .. "/echo"}
  os.remove(file)
  lu.assertEquals(#r.stdout, #big)
  lu.assertEquals(r.stdout, big)
  lu.assertStrContains(r.stderr, "100 Continue")
  r = H.run{"curl", "-s", "-I", base .. "/hello"}
  lu.assertStrContains(r.stdout, "Content-Length: 6")
end

function TestProtocol:test_python_aiohttp_client()
  local srv <close>, port = serve()
  local r = H.python([[
import asyncio, sys, aiohttp
async def main(port):
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as s:
        out = []
        for _ in range(3):
            async with s.get(base + "/hello") as r: out.append(await r.text())
        async with s.post(base + "/echo", data=b"x" * 100000) as r: out.append(str(len(await r.read())))
        async def chunks():
            for i in range(5): yield b"abc"
        async with s.post(base + "/echo", data=chunks()) as r: out.append(await r.text())
        res = await asyncio.gather(*[s.get(base + "/users/%d" % i) for i in range(20)])
        out.append(",".join([str(x.status) for x in res]))
        print("|".join(out))
asyncio.run(main(int(sys.argv[1])))
]], tostring(port))
  lu.assertEquals(r.stderr, "")
  lu.assertEquals(r.stdout, "hello\n|hello\n|hello\n|100000|abcabcabcabcabc|" ..
                  ("200,"):rep(19) .. "200\n")
end

TestLimits = support.suite({}, 30)

-- Each hostile request gets its status; the good client is served after each.
function TestLimits:test_each_limit_has_its_status()
  local srv <close>, port = serve(nil, {limits = {max_uri = 100, max_head = 1000, max_headers = 10,
                                                  max_body = 1000}})
  local good, gs = good_client(port)
  local cases = {
    {"GARBAGE\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nbad header\r\n\r\n", 400},
    {"GET /" .. ("a"):rep(200) .. " HTTP/1.1\r\n\r\n", 414},
    {"GET / HTTP/1.1\r\nX: " .. ("a"):rep(2000) .. "\r\n\r\n", 431},
    {"GET / HTTP/1.1\r\n" .. ("X: 1\r\n"):rep(20) .. "\r\n", 431},
    {"POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 413},
    {"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" .. ("100\r\n" .. ("x"):rep(256) .. "\r\n"):rep(5), 413},
    {"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
    {"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400},
    {"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
    {"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
    {"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
    {"GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417},
  }
  for _, case in ipairs(cases) do
    local r = H.request(port, case[1])
    lu.assertEquals(r.status, case[2], case[1]:sub(1, 60))
    lu.assertEquals(r.headers.connection, "close")
    good()
  end
  gs:close()
end

function TestLimits:test_slowloris_gets_408_and_idle_is_closed()
  local srv <close>, port = serve(nil, {limits = {header_timeout = 0.1, idle_timeout = 0.2}})
  local function good() lu.assertEquals(H.request(port, H.get("/hello")).body, "hello\n") end
  local slow <close> = H.connect(port)
  slow:write("GET /hello HTTP/1.1\r\nX-A: 1\r\n")   -- and never the end of the head
  local silent <close> = H.connect(port)
  local r = H.read_response(slow)
  lu.assertEquals(r.status, 408)
  lu.assertEquals(H.read_response(silent).status, 408)  -- connected, sent nothing
  good()
  local idle <close> = H.connect(port)
  idle:write(H.get("/hello"))
  lu.assertEquals(H.read_response(idle).status, 200)
  lu.assertNil(idle:read())                               -- closed when idle too long
end

function TestLimits:test_a_client_that_never_reads_is_reset()
  local r = http.router()
  r:get("/big", function(req, res)
    for _ = 1, 1000 do res:write(("x"):rep(65536)) end
  end)
  r:get("/hello", function() return 200, "hello\n" end)
  local srv <close>, port = serve(r, {limits = {send_timeout = 0.2}})
  local good, gs = good_client(port)
  local lazy <close> = H.connect(port)
  lazy:set_read_buffer(1)
  lazy:write(H.get("/big"))
  async.sleep(0.05)
  good()
  support.eventually = support.eventually or nil
  while srv:connections() > 1 do async.sleep(0.01) end   -- the lazy one is gone
  good()
  gs:close()
end

function TestLimits:test_handler_header_injection_is_refused()
  local r = http.router()
  r:get("/inject", function() return 200, "x", {["X-Evil"] = "a\r\nSet-Cookie: owned=1"} end)
  r:get("/badname", function() return 200, "x", {["Bad Name"] = "v"} end)
  r:get("/badstatus", function() return 999, "x" end)
  r:get("/badbody", function() return 200, {} end)
  local errors = {}
  local srv <close>, port = serve(r, {error_log = function(m) errors[#errors + 1] = m end})
  for _, p in ipairs{"/inject", "/badname", "/badstatus", "/badbody"} do
    local res = H.request(port, H.get(p))
    lu.assertEquals(res.status, 500)
    lu.assertNotStrContains(res.raw_head, "owned")
  end
  lu.assertEquals(#errors, 4)
  lu.assertStrContains(errors[1], "header that is not allowed")
end

function TestLimits:test_failing_handler_gets_500_and_log_not_wire()
  local errors = {}
  local r = http.router()
  r:get("/fail", function() error("secret detail") end)
  r:get("/teapot", function() error(http.error(418, "short and stout")) end)
  r:get("/partial", function(req, res) res:write("begun"); error("late") end)
  r:get("/hello", function() return 200, "hello\n" end)
  local srv <close>, port = serve(r, {error_log = function(m) errors[#errors + 1] = m end})
  local res = H.request(port, H.get("/fail"))
  lu.assertEquals(res.status, 500)
  lu.assertNotStrContains(res.body, "secret")
  lu.assertStrContains(errors[1], "secret detail")
  lu.assertStrContains(errors[1], "stack traceback")
  res = H.request(port, H.get("/teapot"))
  lu.assertEquals(res.status, 418)
  lu.assertStrContains(res.body, "short and stout")
  local s <close> = H.connect(port)
  s:write(H.get("/partial"))
  lu.assertEquals(s:read_line(), "HTTP/1.1 200 OK")
  s:read_until("\r\n\r\n")
  lu.assertEquals(s:read_line(), "5")
  lu.assertEquals(s:read_line(), "begun")
  lu.assertNil(s:read())                    -- no terminating chunk: the peer sees it broke
  lu.assertEquals(#errors, 2)
end

function TestLimits:test_connection_cap_answers_503()
  local gate = async.future()
  local r = http.router()
  r:get("/wait", function() gate:await(); return 200, "ok" end)
  local srv <close>, port = serve(r, {limits = {max_connections = 2}})
  local a <close> = H.connect(port)
  local b <close> = H.connect(port)
  a:write(H.get("/wait"))
  b:write(H.get("/wait"))
  while srv:connections() < 2 do async.sleep(0.001) end
  local res = H.request(port, H.get("/wait"))
  lu.assertEquals(res.status, 503)
  gate:resolve()
  lu.assertEquals(H.read_response(a).body, "ok")
  lu.assertEquals(H.read_response(b).body, "ok")
end

TestShutdown = support.suite({}, 20)

function TestShutdown:test_graceful_shutdown_finishes_in_flight_and_closes_idle()
  local gate, entered = async.future(), async.future()
  local r = http.router()
  r:get("/wait", function() entered:resolve(); gate:await(); return 200, "finished" end)
  r:get("/hello", function() return 200, "hello\n" end)
  local lines = {}
  local srv, port = serve(r, {access_log = function(l) lines[#lines + 1] = l end})
  local idle <close> = H.connect(port)
  idle:write(H.get("/hello"))
  lu.assertEquals(H.read_response(idle).status, 200)
  local busy <close> = H.connect(port)
  busy:write(H.get("/wait"))
  entered:await()
  local t = async.spawn(srv.shutdown, srv, 5)
  async.sleep(0)
  lu.assertNil(idle:read())                          -- idle keep-alive closed at once
  local ok = pcall(H.connect, port)
  lu.assertFalse(ok)                                 -- not accepting
  gate:resolve()
  local res = H.read_response(busy)
  lu.assertEquals(res.body, "finished")
  lu.assertEquals(res.headers.connection, "close")
  lu.assertEquals(t:await(), 0)
  lu.assertEquals(#lines, 2)
  lu.assertStrContains(lines[2], '"GET /wait HTTP/1.1" 200 8')
end

function TestShutdown:test_deadline_cancels_what_is_left()
  local cleaned = false
  local entered = async.future()
  local r = http.router()
  r:get("/stuck", function()
    local _ <close> = setmetatable({}, {__close = function() cleaned = true end})
    entered:resolve()
    async.sleep(60)
  end)
  local srv, port = serve(r)
  local s <close> = H.connect(port)
  s:write(H.get("/stuck"))
  entered:await()
  lu.assertEquals(srv:shutdown(0.05), 1)
  lu.assertTrue(cleaned)
  lu.assertNil(s:read())
  lu.assertEquals(srv:connections(), 0)
end

support.run(...)
