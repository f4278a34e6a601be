-- tests/test_http_fastpath.lua: what the HTTP server's hot path must keep:
-- the request headers the parser packs into one string and unpacks on first
-- use (repeated names joined, any case, pipelined requests kept apart), and
-- the inlined common response, byte for byte what the general path sends
-- (a status the server has not sent before takes the general path first).
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local H = require "rawhttp"
local hp = require "async.core.http_parser"
local loop = require "async.core.http_loop"
local http = async.http
local format = string.format

TestHttpFastPath = {}

function TestHttpFastPath:test_packed_headers_unpack_on_use()
  local p = hp.new()
  local ev, _, req = p:execute("GET /a HTTP/1.1\r\nX-One: 1\r\nx-one: 2\r\nHost: h\r\n\r\n")
  lu.assertEquals(ev, "head")
  lu.assertEquals(type(req.packed_headers), "string")
  local h = hp.headers(req.packed_headers)
  lu.assertEquals(h, {["x-one"] = "1, 2", host = "h"})
  lu.assertEquals(hp.headers(""), {})
  lu.assertErrorMsgContains("packed headers", hp.headers, "abc")
  lu.assertErrorMsgContains("packed headers", hp.headers, ("\255"):rep(12))
  lu.assertErrorMsgContains("string expected", hp.headers, nil)
  lu.assertErrorMsgContains("table expected", hp.headers, "", 42)
end

-- Pipelined requests, each handler reading its own headers after the next
-- request's head has been parsed into the same parser buffer.
function TestHttpFastPath:test_pipelined_requests_keep_their_headers()
  local srv = http.serve{port = 0, error_log = function() end, handler = function(req)
    return 200, req.headers["X-N"] .. " " .. req.path
  end}
  local s <close> = H.connect(select(2, srv:address()))
  s:write(H.get("/1", "X-N: one\r\n") .. H.get("/2", "X-N: two\r\n") .. H.get("/3", "x-n: three\r\n"))
  lu.assertEquals(H.read_response(s).body, "one /1")
  lu.assertEquals(H.read_response(s).body, "two /2")
  lu.assertEquals(H.read_response(s).body, "three /3")
  srv:close()
end

-- The same handler result through the inlined path (the second time a
-- status is sent) and the general one (the first time, HEAD, HTTP/1.0,
-- headers given) gives the same bytes but the Date.
function TestHttpFastPath:test_inline_response_matches_the_general_one()
  local srv = http.serve{port = 0, error_log = function() end, handler = function(req)
    if req.path == "/empty" then return 299, "" end
    return 299, "body"
  end}
  local s <close> = H.connect(select(2, srv:address()))
  local function raw(path, version)
    s:write("GET " .. path .. " HTTP/" .. (version or "1.1") .. "\r\nHost: t\r\nConnection: keep-alive\r\n\r\n")
    local r = H.read_response(s)
    return (r.raw_head:gsub("Date: [^\n]*", "Date: -")), r.body
  end
  local first_head, first_body = raw("/")
  local second_head, second_body = raw("/")
  lu.assertEquals(second_head, first_head)
  lu.assertEquals(second_body, first_body)
  lu.assertStrContains(first_head, "Content-Length: 4")
  local e1, b1 = raw("/empty")
  local e2, b2 = raw("/empty")
  lu.assertEquals(e2, e1)
  lu.assertEquals(b1 .. b2, "")
  lu.assertStrContains(e1, "Content-Length: 0")
  lu.assertStrContains(raw("/", "1.0"), "Connection: keep-alive")
  srv:close()
end

-- A handler that takes no res argument gets none made per request; req.res
-- makes it on first use, and a response streamed through it is sent as
-- with the argument (a router or a vararg handler still gets it).
function TestHttpFastPath:test_res_made_when_asked()
  local function one_arg(req)
    if req.path == "/fail" then                   -- the head is out: the 500 is not sent
      req.res:start(200)
      error("after the head")
    end
    if req.path == "/stream" then
      local res = req.res
      lu.assertIs(req.res, res)
      res:start(201, {["X-S"] = "1"})
      res:write("a")
      res:finish("b")
      return
    end
    return 200, rawget(req, "res") == nil and "none" or "made"
  end
  local function vararg(...)
    local req, res = ...
    lu.assertIs(req.res, res)
    res:finish("v")
  end
  for _, case in ipairs{{one_arg, "none"}, {vararg}} do
    local srv = http.serve{port = 0, error_log = function() end, handler = case[1]}
    local s <close> = H.connect(select(2, srv:address()))
    if case[2] then
      s:write(H.get("/"))
      lu.assertEquals(H.read_response(s).body, case[2])
      s:write(H.get("/stream"))
      local r = H.read_response(s)
      lu.assertEquals(r.status, 201)
      lu.assertEquals(r.body, "ab")
      lu.assertStrContains(r.raw_head, "X-S: 1")
      s:write(H.get("/fail"))
      local _, k = s:read_all():gsub("HTTP/1%.1 ", "")
      lu.assertEquals(k, 1)
    else
      s:write(H.get("/"))
      lu.assertEquals(H.read_response(s).body, "v")
    end
    srv:close()
  end
end

-- A handler's error is answered and the connection goes on with the next
-- request (the requests run in one protected call per connection, entered
-- again after each error): pipelined, for both kinds of handler.
function TestHttpFastPath:test_connection_goes_on_after_handler_errors()
  local function one_arg(req)
    if req.path == "/boom" then error("boom") end
    if req.path == "/teapot" then error(http.error(418)) end
    return 200, "ok " .. req.path
  end
  local function two_args(req, res) return one_arg(req) end
  for _, h in ipairs{one_arg, two_args} do
    local errors = {}
    local srv = http.serve{port = 0, handler = h, error_log = function(m) errors[#errors + 1] = m end}
    local s <close> = H.connect(select(2, srv:address()))
    s:write(H.get("/a") .. H.get("/boom") .. H.get("/b") .. H.get("/teapot") .. H.get("/c"))
    local got = {}
    for i = 1, 5 do
      local r = H.read_response(s)
      got[i] = r.status .. " " .. r.body
    end
    lu.assertEquals(got, {"200 ok /a", "500 Internal Server Error\n", "200 ok /b",
                          "418 I'm a teapot\n", "200 ok /c"})
    lu.assertEquals(#errors, 1)
    lu.assertStrContains(errors[1], "boom")
    srv:close()
  end
end

-- The fields the parser leaves out for the common request read as before.
function TestHttpFastPath:test_fields_left_out_read_as_sent()
  local srv = http.serve{port = 0, error_log = function() end, handler = function(req)
    if req.method == "POST" then req:body() end
    return 200, format("%s %s %s", req.version, tostring(req.keep_alive), tostring(req.body_done))
  end}
  local port = select(2, srv:address())
  local function ask(raw) return H.request(port, raw).body end
  lu.assertEquals(ask("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"), "1.1 false true")
  lu.assertEquals(ask("GET / HTTP/1.0\r\n\r\n"), "1.0 false true")
  lu.assertEquals(ask("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), "1.0 true true")
  lu.assertEquals(ask("POST / HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab"), "1.1 false true")
  local s <close> = H.connect(port)
  s:write(H.get("/"))
  lu.assertEquals(H.read_response(s).body, "1.1 true true")
  s:write("GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
  lu.assertEquals(H.read_response(s).body, "1.1 true false")   -- read after the handler
  srv:close()
end

-- The request loop in C (async.core.http_loop's serve): it answers the common request itself
-- and hands the rest back to the Lua loop where it stands. These go back
-- and forth between the two on one connection.

-- A body whose every 8 bytes say where they are: a byte lost, doubled or
-- moved shows.
local function numbered(n)
  local t = {}
  for i = 1, n // 8 do t[i] = format("%07d\n", i) end
  return table.concat(t)
end

TestHttpServeLoop = {}

-- The common response larger than the socket takes at once (the kernel
-- takes part, the rest is queued), then more requests on the connection
-- while it is still queued: every byte in order.
function TestHttpServeLoop:test_a_common_response_larger_than_the_socket_takes()
  local big = numbered(16 * 1024 * 1024)
  local srv = http.serve{port = 0, error_log = function() end, handler = function(req)
    if req.path == "/big" then return 200, big end
    return 200, "small " .. req.path
  end}
  local s <close> = H.connect(select(2, srv:address()))
  s:write(H.get("/first"))                        -- 200's first: the general path
  lu.assertEquals(H.read_response(s).body, "small /first")
  s:write(H.get("/big"))
  s:write(H.get("/after"))                        -- sent before the big one is read
  local r = H.read_response(s)
  lu.assertEquals(#r.body, #big)
  lu.assertTrue(r.body == big, "the large body came back changed")
  lu.assertEquals(H.read_response(s).body, "small /after")
  s:write(H.get("/big"))
  lu.assertTrue(H.read_response(s).body == big)
  srv:close()
end

-- A handler that waits (here longer than the idle timeout) is in the
-- handler phase, which has no timeout: its connection is not expired, and
-- it goes on with the next request.
function TestHttpServeLoop:test_a_waiting_handler_is_not_taken_for_an_idle_connection()
  local srv = http.serve{port = 0, error_log = function() end,
                         limits = {idle_timeout = 0.05, header_timeout = 0.05},
                         handler = function(req)
    if req.path == "/slow" then async.sleep(0.3) end
    return 200, "done " .. req.path
  end}
  local s <close> = H.connect(select(2, srv:address()))
  for _, path in ipairs{"/a", "/slow", "/b", "/slow"} do
    s:write(H.get(path))
    lu.assertEquals(H.read_response(s).body, "done " .. path)
  end
  srv:close()
end

-- One connection through every turn between the C loop and the Lua one: a
-- head in two pieces, a body in the head's read, pipelined requests, HEAD,
-- HTTP/1.0 keep-alive, a handler's error, headers returned, a status not
-- seen before; each answer as the general path gives it.
function TestHttpServeLoop:test_one_connection_through_both_loops()
  local srv = http.serve{port = 0, error_log = function() end, handler = function(req)
    if req.method == "POST" then return 201, "got " .. req:body() end
    if req.path == "/boom" then error("boom") end
    if req.path == "/h" then return 200, "h", {["X-H"] = "1"} end
    if req.path == "/new" then return 203, "new" end
    return 200, req.method .. " " .. req.path
  end}
  local s <close> = H.connect(select(2, srv:address()))
  local function expect(status, body, head_only)
    local r = H.read_response(s, head_only)
    lu.assertEquals(r.status, status)
    lu.assertEquals(r.body, body)
    return r
  end
  s:write(H.get("/1")); expect(200, "GET /1")
  s:write("GET /2 HTTP/1.1\r\nHo")              -- the rest comes later: "more"
  async.sleep(0.01)
  s:write("st: t\r\n\r\n"); expect(200, "GET /2")
  s:write("POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"); expect(201, "got abc")
  s:write(H.get("/3") .. H.get("/4")); expect(200, "GET /3"); expect(200, "GET /4")
  s:write("HEAD /5 HTTP/1.1\r\nHost: t\r\n\r\n")
  lu.assertEquals(expect(200, "", true).headers["content-length"], "7")
  s:write(H.get("/boom")); expect(500, "Internal Server Error\n")
  s:write(H.get("/h")); lu.assertEquals(expect(200, "h").headers["x-h"], "1")
  s:write(H.get("/new")); expect(203, "new")
  s:write(H.get("/new")); expect(203, "new")
  s:write("GET /6 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"); expect(200, "GET /6")
  s:write(H.get("/7")); expect(200, "GET /7")
  srv:close()
end

-- Connections waiting in serve's read (idle after plain requests) are
-- cancelled cleanly: the wait on the stream's buffer is dropped, each
-- connection ends, and its client sees the end of the stream.
function TestHttpServeLoop:test_connections_idle_in_the_c_loop_are_cancelled_cleanly()
  local srv = http.serve{port = 0, error_log = function() end, handler = function() return 200, "x" end}
  local conns = {}
  for i = 1, 5 do
    local s = H.connect(select(2, srv:address()))
    for _ = 1, 3 do                                -- the second and third: serve's own
      s:write(H.get("/"))
      lu.assertEquals(H.read_response(s).body, "x")
    end
    conns[i] = s
  end
  lu.assertEquals(srv:connections(), 5)
  lu.assertEquals(srv.net:shutdown(0), 5)         -- cancels them where they wait
  lu.assertEquals(srv:connections(), 0)
  for _, s in ipairs(conns) do
    lu.assertNil(s:read())
    s:close()
  end
  srv:close()
end

-- A common response that has to wait in the C loop's write (its peer reads
-- nothing, the first large answer is still queued) is in the send phase:
-- send_timeout resets the connection, and the server goes on serving.
function TestHttpServeLoop:test_a_common_response_waiting_on_a_peer_that_does_not_read()
  local big = ("b"):rep(4 * 1024 * 1024)
  local first_big = async.future()
  local srv = http.serve{port = 0, error_log = function() end, limits = {send_timeout = 0.2},
                         handler = function(req)
    if req.path == "/big" then
      if not first_big:done() then first_big:resolve() end
      return 200, big
    end
    return 200, "small"
  end}
  local port = select(2, srv:address())
  local lazy <close> = H.connect(port)
  lazy:set_read_buffer(1)
  lazy:write(H.get("/small"))                     -- 200 seen: /big takes the C loop
  lu.assertEquals(H.read_response(lazy).body, "small")
  lazy:write(H.get("/big"))                       -- queued, not waited for
  first_big:await()                               -- the loop reads the next one alone
  lazy:write(H.get("/big"))
  local good <close> = H.connect(port)
  local function ask()
    good:write(H.get("/small"))
    lu.assertEquals(H.read_response(good).body, "small")
  end
  ask()
  lu.assertEquals(srv:connections(), 2)
  while srv:connections() > 1 do                  -- the lazy one is reset at last
    ask()
    async.sleep(0.05)
  end
  ask()
  srv:close()
end

-- A script that serves HTTP does not load libcurl (the client's global
-- init costs milliseconds at start); the client loads it on first use, and
-- http.curl_version still reads.
function TestHttpServeLoop:test_serving_does_not_load_the_client_library()
  local r = support.lasync_run([[
    local http = async.http
    local srv = http.serve{port = 0, handler = function() return 200, "x" end}
    local s = async.net.connect("127.0.0.1", select(2, srv:address()))
    s:write("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert(s:read():find("200 OK", 1, true))
    print(package.loaded["async.core.http"] == nil)
    print(type(http.curl_version), package.loaded["async.core.http"] ~= nil)
    srv:close()
  ]])
  lu.assertEquals(r.stderr, "")
  lu.assertEquals(r.stdout, "true\nstring\ttrue\n")
end

-- The loop's functions refuse what is not theirs.
function TestHttpServeLoop:test_serve_and_phase_refuse_wrong_arguments()
  local p = hp.new()
  lu.assertEquals({hp.phase(p)}, {"head", 0})
  hp.set_phase(p, "idle")
  lu.assertEquals({hp.phase(p)}, {"idle", 1})
  lu.assertErrorMsgContains("invalid option", hp.set_phase, p, "nap")
  lu.assertErrorMsgContains("lasync.HttpParser expected", hp.phase, {})
  lu.assertErrorMsgContains("lasync.HttpParser expected", loop.serve, {}, {}, {})
  lu.assertErrorMsgContains("table expected", loop.serve, p, 1, {})
  lu.assertErrorMsgContains("table expected", loop.serve, p, {}, {}, nil, nil, nil, nil, false, nil, 5, {})
end

support.run(...)
