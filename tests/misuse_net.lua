-- tests/misuse_net.lua: the misuse sweep's objects of the types that need
-- a peer or a special state (HTTP client and server, WebSocket, TLS, the
-- core codecs, the error classes, an Alarm, a core Fd). The peers are one
-- HTTP server and one HTTPS server (a certificate made with `openssl req`
-- in a temporary directory), started in the sweeping process on first use
-- and stopped by M.stop(). Every wait is bounded.
--
-- M.add(CONSTRUCTORS, METHODS, tmpdir) adds entries to the sweep's tables:
-- CONSTRUCTORS[__name] = function() return obj, cleanup end (a second
-- variant of one __name is keyed "__name (what)"); METHODS[__name] lists
-- the methods of a type whose __index is a function (not enumerable).
local http, ws, json = async.http, async.ws, async.json
local tls = require "async.tls"
local M = {}

local env                                -- the peers, once started
local WAIT = 10                          -- the bound of every wait here

-- A handler that hands its objects to the sweep and holds them live until
-- the sweep lets go (ev) or the bound passes.
local function hold(make)
  return function(req, res)
    local f = table.remove(env.wanted, 1)
    if not f then return 404 end
    local ev = async.event()
    local obj = make(req, res)
    f:resolve{req = req, res = res, obj = obj, ev = ev}
    pcall(async.timeout, WAIT * 3, ev.wait, ev)
    if obj then pcall(obj.close, obj) end
  end
end

local function start(dir)
  env = {dir = dir, wanted = {}, release = async.event()}
  env.cert, env.key = dir .. "/cert.pem", dir .. "/key.pem"
  async.process.run{"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", env.key,
                    "-out", env.cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    check = true, timeout = 30, stdout = "ignore", stderr = "ignore"}
  local r = http.router()
  r:get("/hello", function() return 200, "hello" end)
  r:get("/hold", hold(function() end))
  -- the raw peer of /wsheld never answers a close: do not wait for it
  r:get("/wsheld", hold(function(req) return ws.upgrade(req, {close_timeout = 0.1}) end))
  r:get("/stream", function(req, res)        -- a transfer that stays in flight
    res:write("first piece")
    pcall(async.timeout, WAIT * 3, env.release.wait, env.release)
  end)
  r:get("/echo", function(req)
    local w <close> = ws.upgrade(req)
    for m, k in w:messages() do w:send(m, k) end
  end)
  local quiet = function() end
  env.srv = http.serve{handler = r, error_log = quiet}
  env.tls = http.serve{handler = r, error_log = quiet, tls = {cert = env.cert, key = env.key}}
  env.port = select(2, env.srv:address())
  env.tls_port = select(2, env.tls:address())
  env.url = "http://127.0.0.1:" .. env.port
  return env
end

function M.stop()
  if not env then return end
  local e = env
  env = nil
  e.release:set()
  local ok1, err1 = pcall(e.srv.close, e.srv)
  local ok2, err2 = pcall(e.tls.close, e.tls)
  assert(ok1 and ok2, tostring(err1) .. " " .. tostring(err2))
end

-- Asks path of the server with a raw request and waits for the held
-- handler's objects; cleanup lets the handler end and reads its answer.
local function held(path, headers)
  local f = async.future()
  env.wanted[#env.wanted + 1] = f
  local s = async.net.connect("127.0.0.1", env.port)
  s:write("GET " .. path .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" .. (headers or "") .. "\r\n")
  local h = async.timeout(WAIT, f.await, f)
  return h, function()
    h.ev:set()
    pcall(async.timeout, WAIT, s.read_all, s)
    s:close()
  end
end

local function caught(fn, ...)
  local ok, e = pcall(fn, ...)
  assert(not ok, "expected an error")
  return e
end

local function streamed()
  local s = http.session{}
  local r = s:get(env.url .. "/stream", {stream = true, timeout = WAIT})
  return r, s
end

function M.add(C, METHODS, tmpdir)
  local function peers() return env or start(tmpdir()) end
  C["lasync.HttpServer"] = function()
    return http.serve{handler = function() end, error_log = function() end}, function(s) s:close() end
  end
  C["lasync.HttpRouter"] = function() return http.router() end
  C["lasync.HttpSessionObject"] = function() return http.session{}, function(s) s:close() end end
  C["lasync.HttpResponse"] = function()           -- the client's, streaming
    peers()
    local r, s = streamed()
    return r, function() r:close() s:close() end
  end
  C["lasync.HttpHeaders"] = function()
    peers()
    local r, s = streamed()
    local h = r.headers
    r:close() s:close()
    return h
  end
  C["lasync.HttpRequest"] = function()
    peers()
    local h, cleanup = held("/hold")
    return h.req, cleanup
  end
  METHODS["lasync.HttpRequest"] = {"read", "chunks", "body", "json", "header"}
  C["lasync.HttpResponse (server)"] = function()
    peers()
    local h, cleanup = held("/hold")
    return h.res, cleanup
  end
  C["lasync.WebSocket"] = function()              -- the client side
    peers()
    return ws.connect("ws://127.0.0.1:" .. env.port .. "/echo", {timeout = WAIT, close_timeout = 0.1}),
      function(w) w:abort() end
  end
  C["lasync.WebSocket (server)"] = function()
    peers()
    local h, cleanup = held("/wsheld", "Upgrade: websocket\r\nConnection: Upgrade\r\n" ..
                            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
    return h.obj, function() h.obj:abort() cleanup() end
  end
  C["lasync.TlsStream"] = function()
    peers()
    local sock = async.net.connect("127.0.0.1", env.tls_port)
    local t = async.timeout(WAIT, tls.connect, sock, "localhost", {ca = env.cert})
    return t, function() t:abort() sock:close() end
  end
  C["lasync.TlsContext"] = function()
    peers()
    return require("async.core.tls").server_context(env.cert, env.key)
  end
  C["lasync.TlsContext (client)"] = function()
    return require("async.core.tls").client_context(true)
  end
  C["lasync.TlsSession"] = function()
    return require("async.core.tls").client_context(true):session("localhost"), function(s) s:free() end
  end
  C["lasync.WsCore"] = function() return require("async.core.ws").new(true, 1000) end
  C["lasync.WsCore (client)"] = function() return require("async.core.ws").new(false, 1000) end
  C["lasync.HttpParser"] = function() return require("async.core.http_parser").new() end
  C["lasync.Alarm"] = function()
    local cancel = require("async.core").alarm(30, function() end)
    return select(2, debug.getupvalue(cancel, 1)), function() cancel() end
  end
  C["lasync.fs.Fd"] = function()
    local fs = require "async.core.fs"
    local fd = fs.open(tmpdir() .. "/fd", "w", 420)
    return fd, function() pcall(fs.close_now, fd) end
  end
  -- the error classes, each as raised by a real failure
  C["lasync.HandlerError"] = function() return http.error(404, "no") end
  C["lasync.HTTPError"] = function()
    peers()
    local r = http.get(env.url .. "/nothing", {timeout = WAIT})
    return caught(r.raise_for_status, r)
  end
  C["lasync.JSONError"] = function() return caught(json.decode, "{") end
  C["lasync.IOError"] = function() return caught(async.fs.open, tmpdir() .. "/no/such") end
  C["lasync.Timeout"] = function() return caught(async.timeout, 0, async.sleep, 1) end
  C["lasync.Cancelled"] = function()
    local t = async.spawn(async.sleep, 10)
    async.sleep(0)
    t:cancel()
    return caught(t.await, t)
  end
  C["lasync.QueueEmpty"] = function() local q = async.queue() return caught(q.get_nowait, q) end
  C["lasync.QueueFull"] = function()
    local q = async.queue(1)
    q:put_nowait(1)
    return caught(q.put_nowait, q, 2)
  end
  C["lasync.QueueClosed"] = function()
    local q = async.queue()
    q:close()
    return caught(q.put_nowait, q, 1)
  end
  C["lasync.BrokenBarrier"] = function()
    local b = async.barrier(2)
    b:abort()
    return caught(b.wait, b)
  end
end

return M
