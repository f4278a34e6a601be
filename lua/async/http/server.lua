-- async.http.server: the HTTP/1.1 server on lasync's TCP streams: the
-- server object (listening, limits, the timeouts, logs, graceful
-- shutdown). Each connection's task and its requests are in
-- async.http.conn.
--
-- Timeouts cost nothing per request: each connection counts its phase
-- changes (in its parser: async.core.http_parser's phase) and one sweeper
-- task per server, waking a few times per shortest timeout, expires the
-- connections whose phase has not changed for too long (slowloris: 408; idle keep-alive: closed; a peer that does
-- not read its response: reset).
local async = require "async"
local net = require "async.net"
local conn = require "async.http.conn"
local phase = require("async.core.http_parser").phase

local format, pairs, type = string.format, pairs, type
local serve_conn = conn.serve_conn
local M = {error = conn.error, HandlerError = conn.HandlerError, take_over = conn.take_over,
           unescape = conn.unescape}

--------------------------------------------------------------- the server

local Server = {}
Server.__index = Server
Server.__name = "lasync.HttpServer"

local PHASE_LIMIT = {head = "header_timeout", handshake = "header_timeout", idle = "idle_timeout", body = "body_timeout",
                     send = "send_timeout", linger = "linger_timeout"}

-- What the sweeper does to a connection stuck in its phase.
local function expire(c)
  c.expired = true
  local ph = phase(c.p)
  if ph == "head" or ph == "body" then
    c.broken = true
    pcall(c.sock.write, c.sock, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n" ..
                                "Connection: close\r\n\r\n")
    c.sock:close()
  elseif ph == "send" then c.sock:abort()
  else c.sock:close() end
end

local function http_date() return os.date("!%a, %d %b %Y %H:%M:%S GMT") end

local function sweep(srv)
  local limits = srv.tick_limits
  while true do
    async.sleep(srv.tick)
    srv.date = http_date()
    for c in pairs(srv.conns) do
      local ph, mark = phase(c.p)
      if mark ~= c.seen then c.seen, c.age = mark, 0
      else
        c.age = c.age + 1
        local lim = limits[ph]
        if lim and c.age >= lim and not c.expired then expire(c) end
      end
    end
  end
end

function Server:log_error(msg)
  local f = self.error_log
  if f then
    local ok = pcall(f, msg)
    if ok then return end
  end
  io.stderr:write("lasync http: ", msg, "\n")
  io.stderr:flush()
end

-- Common Log Format line for each answered request.
function Server:log_access(c, req, status, bytes)
  local log = self.access_log
  local line = format('%s - - [%s] "%s %s HTTP/%s" %d %d', c.peer or "-", os.date("!%d/%b/%Y:%H:%M:%S +0000"), req and req.method or "-",
    req and req.target or "-", req and req.version or "1.1", status, bytes or 0)
  if type(log) == "function" then pcall(log, line, req, status, bytes)
  else pcall(log.write, log, line, "\n") end
end

local DEFAULTS = {
  max_uri = 8192, max_head = 16384, max_headers = 100, max_body = 1048576,
  max_connections = 10000, header_timeout = 10, idle_timeout = 60, body_timeout = 30,
  send_timeout = 30, linger_timeout = 2,
}

local function check_limits(t)
  if t ~= nil and type(t) ~= "table" then error("http.serve: limits must be a table", 3) end
  local l = {}
  for k, v in pairs(t or {}) do
    if DEFAULTS[k] == nil then error("http.serve: unknown limit " .. tostring(k), 3) end
    if type(v) ~= "number" or v <= 0 then
      error(format("http.serve: limits.%s must be a positive number", k), 3)
    end
  end
  for k, v in pairs(DEFAULTS) do l[k] = (t and t[k]) or v end
  return l
end

-- http.serve{host=, port=, handler=, limits=, access_log=, error_log=,
-- tls=, backlog=, reuseport=}: a Server.
function M.serve(opts)
  if type(opts) ~= "table" then error("http.serve: options table expected", 2) end
  local h = opts.handler
  if type(h) ~= "function" and not (getmetatable(h) or {}).__call then
    error("http.serve: handler must be a function or a router", 2)
  end
  local limits = check_limits(opts.limits)
  -- whether the handler may take res (a router, a C function or a vararg
  -- one may): conn.lua makes it only then, or when req.res is read
  local info = type(h) == "function" and debug.getinfo(h, "u")
  local srv = setmetatable({handler = h, limits = limits, conns = {}, nconn = 0,
                            max_connections = limits.max_connections, date = http_date(),
                            access_log = opts.access_log == true and io.stderr or opts.access_log,
                            error_log = opts.error_log,
                            res_arg = not info or info.isvararg or info.nparams >= 2}, Server)
  local shortest = math.huge
  for ph, key in pairs(PHASE_LIMIT) do shortest = math.min(shortest, limits[key]) end
  srv.tick = math.max(0.005, math.min(1, shortest / 4))
  srv.tick_limits = {}
  for ph, key in pairs(PHASE_LIMIT) do srv.tick_limits[ph] = math.ceil(limits[key] / srv.tick) end
  if opts.tls then srv.tls = require("async.tls").server_context(opts.tls) end
  srv.net = net.listen(opts.host or "127.0.0.1", opts.port or 0, function(sock)
    return serve_conn(srv, sock)
  end, {backlog = opts.backlog, reuseport = opts.reuseport, on_error = function(e)
    srv:log_error(tostring(e))
  end})
  srv.sweeper = async.spawn(sweep, srv)
  return srv
end

-- server:address(): ip, port.
function Server:address() return self.net:address() end

-- server:connections(): how many connections are open.
function Server:connections() return self.nconn end

-- server:shutdown([deadline]): stops accepting, closes idle keep-alive
-- connections, starts the close handshake (1001) of WebSockets, lets
-- requests in flight finish for up to `deadline`
-- seconds (their responses say Connection: close), then cancels what is
-- left. Returns how many requests were cancelled.
function Server:shutdown(deadline)
  if deadline ~= nil and (type(deadline) ~= "number" or deadline < 0) then
    error("server:shutdown: deadline must be a number of seconds (0 or more)", 2)
  end
  self.closing = true
  self.net:address()
  for c in pairs(self.conns) do
    local ph, mark = phase(c.p)
    if ph == "idle" or (ph == "head" and c.buf == nil and mark == 0) then
      c.sock:close()
    elseif c.ws then
      c.ws:_going_away()
    end
  end
  local n = self.net:shutdown(deadline)
  if self.sweeper then
    local t = self.sweeper
    self.sweeper = nil
    t:cancel()
    pcall(t.await, t)
  end
  return n
end

-- server:close(): stops at once: in-flight requests are cancelled.
function Server:close()
  if self.closed_ then return end
  self.closed_ = true
  self:shutdown(0)
end

Server.__close = Server.close

function Server:__tostring()
  local ip, port = self:address()
  return format("HttpServer<%s:%s, %d connection%s>", tostring(ip), tostring(port), self.nconn,
                self.nconn == 1 and "" or "s")
end

require("async.class").check_self(Server)  -- a wrong self raises at once
return M
