-- async.http.conn: the connection side of the HTTP/1.1 server: each
-- connection's task, its requests and responses. async.http.server has the
-- server object (listening, timeouts, logs, shutdown). Parsing is
-- libhttp-parser's (async.core.http_parser, which also enforces the size
-- limits as bytes arrive); this file answers a connection's requests in
-- order (keep-alive, pipelining, Expect: 100-continue, HEAD, chunked bodies
-- both ways).
local async = require "async"
local hp = require "async.core.http_parser"
local serve = require("async.core.http_loop").serve
local phase, set_phase_p = hp.phase, hp.set_phase
local reasons = require "async.http.status"

local format, concat, lower = string.format, table.concat, string.lower
local tostring, type, pairs, tonumber = tostring, type, pairs, tonumber
local M = {}

-------------------------------------------------------------------- errors

local HandlerError = {__name = "lasync.HandlerError"}
HandlerError.__index = HandlerError
function HandlerError:__tostring() return format("HandlerError: %d %s", self.status, self.message) end
M.HandlerError = HandlerError

-- http.error(status [, message]): an error value that a handler may raise
-- (error(http.error(404))) to answer with that status.
function M.error(status, message)
  if math.type(status) ~= "integer" or status < 400 or status > 599 then
    error("http.error: status must be an integer from 400 to 599", 2)
  end
  return setmetatable({kind = "HandlerError", status = status,
                       message = message or reasons[status] or "Error"}, HandlerError)
end

----------------------------------------------------------------- helpers

local function unescape(s)
  if not s:find("[%%+]") then return s end
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end
M.unescape = unescape

local function unescape_path(s)
  if not s:find("%", 1, true) then return s end
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- "a=1&b=x%20y&a=2" -> {a = "2", b = "x y"} (the last value of a repeated
-- name wins; req:query_all(name) has them all).
local function parse_query(qs)
  local q = {}
  for pair in qs:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    q[unescape(k)] = unescape(v)
  end
  return q
end

-- Header lookup by any case: the parser gives lowercase names.
local Headers = {__index = function(t, k)
  if type(k) == "string" then
    local l = lower(k)
    if l ~= k then return rawget(t, l) end
  end
end}

--------------------------------------------------------- the connection

-- The connection's phase and its count of changes live in its parser
-- (hp.phase, hp.set_phase): serve changes them without a table write.
local function set_phase(c, ph) set_phase_p(c.p, ph) end

-- The next parser event: "head", "body", "done", "error" (status,
-- message) or "eof" (the peer ended the stream between requests).
local function next_event(c)
  while true do
    local buf = c.buf
    if buf then
      local ev, a, b, plain = c.p:execute(buf, c.pos)
      if ev ~= "more" then
        if ev ~= "error" then c.pos = a end
        return ev, a, b, plain
      end
      c.buf = nil
    end
    local data = c.sock:read()
    if not data then
      local ev, a, b = c.p:execute("", 1)
      if ev == "error" then return ev, a, b end
      return "eof"
    end
    c.buf, c.pos = data, 1
    if phase(c.p) == "idle" then set_phase_p(c.p, "head") end
  end
end

-- Sends `status` with a short text body and ends the connection: the
-- answer to a request the parser refused or a timeout. Reads and drops
-- what the peer still sends for a moment (a lingering close) so the
-- kernel does not reset the connection before the answer is read.
local function refuse(c, status, message)
  local body = (reasons[status] or "Error") .. ": " .. tostring(message) .. "\n"
  pcall(c.sock.write, c.sock, format(
    "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" ..
    "Connection: close\r\n\r\n%s", status, reasons[status] or "Error", #body, body))
  if c.srv.access_log then c.srv:log_access(c, nil, status, #body) end
  set_phase(c, "linger")
  pcall(function()
    c.sock:shutdown()
    local n = 0
    repeat
      local d = c.sock:read()
      n = n + (d and #d or 0)
    until not d or n > 1048576
  end)
end

------------------------------------------------------------ the request

local Request = {}
local lazy = {}

local RequestMT = {__name = "lasync.HttpRequest"}
function RequestMT.__index(r, k)
  local m = Request[k]
  if m ~= nil then return m end
  local f = lazy[k]
  if f then
    local v = f(r)
    rawset(r, k, v)
    return v
  end
end

-- The target split into path and query only when asked for (a handler
-- that looks at neither pays nothing).
local function split_target(r)
  local target = r.target
  local path, qs = target, ""
  local q = target:find("?", 1, true)
  if q then path, qs = target:sub(1, q - 1), target:sub(q + 1) end
  if path:byte(1) ~= 47 then                       -- absolute form: http://host/path
    path = path:match("^%a[%w+.-]*://[^/]*(/.*)$") or path
  end
  rawset(r, "raw_path", path)
  rawset(r, "query_string", qs)
end

-- Fields the parser leaves out for the common request (three new keys in
-- each request table fewer): a request with no version is HTTP/1.1; with
-- no keep_alive, the version's default; one without a body is done at its
-- head (Request:read sets body_done when it reads the end).
function lazy.version() return "1.1" end
function lazy.keep_alive(r) return r.version == "1.1" end
function lazy.body_done(r) return not r.chunked and (r.content_length or 0) == 0 end
function lazy.raw_path(r) split_target(r); return r.raw_path end
function lazy.query_string(r) split_target(r); return r.query_string end
function lazy.path(r) return unescape_path(r.raw_path) end
function lazy.query(r) return parse_query(r.query_string) end
function lazy.remote(r) return (r.conn.sock:peer()) end
function lazy.params() return {} end
function lazy.headers(r) return hp.headers(r.packed_headers, Headers) end
local Response
-- A handler that takes no res argument gets none made (a table and a
-- setmetatable call per request); req.res makes it when asked (ws.upgrade).
-- The connection keeps it for run and handle while r is in flight (a
-- rawget per request to look for it cost a C call).
function lazy.res(r)
  local c = r.conn
  local res = setmetatable({conn = c, req = r}, Response)
  if c.current == r then c.made_res = res end
  return res
end

-- The next piece of the body, or nil at its end. Raises an HandlerError
-- (413, 400, ...) when the parser refuses the body.
function Request:read()
  if self.body_done then return nil end
  local c = self.conn
  if c.current ~= self then error("req:read: this request's connection has moved on", 2) end
  if self.expect_continue and not self.continued then
    self.continued = true
    c.sock:write("HTTP/1.1 100 Continue\r\n\r\n")
  end
  local was = phase(c.p)
  set_phase(c, "body")
  local ev, a, b = next_event(c)
  set_phase(c, was)
  if ev == "body" then return b end
  self.body_done = true
  if ev == "done" then return nil end
  c.broken = true
  if ev == "eof" then error(M.error(400, "the body ended early"), 0) end
  error(M.error(a, b), 0)
end

-- for chunk in req:chunks() do ... end
function Request:chunks()
  return function() return self:read() end
end

-- The whole body as a string (read once, then kept).
function Request:body()
  if self.body_text == nil then
    local parts = {}
    for chunk in self:chunks() do parts[#parts + 1] = chunk end
    self.body_text = concat(parts)
  end
  return self.body_text
end

-- The body decoded as JSON (async.json); 400 when it is not JSON.
function Request:json()
  local json = require "async.json"
  local ok, v = pcall(json.decode, self:body())
  if not ok then error(M.error(400, "the body is not valid JSON: " .. tostring(v)), 0) end
  return v
end

function Request:header(name) return self.headers[name] end

RequestMT.__tostring = function(r) return format("HttpRequest<%s %s>", r.method, r.target) end

----------------------------------------------------------- the response

local function bad_header(name, value)
  return type(name) ~= "string" or not name:find("^[!#$%%&'*+%-.^_`|~%w]+$")
    or value:find("[\r\n%z]")
end

-- The head of a response: status line and headers, without the final
-- CRLF. `length` is the body's length, or nil for chunked, or false for
-- none. Raises on a header name or value that would break the framing.
-- "HTTP/1.1 200 OK\r\nDate: " by status, and decimal lengths: number to
-- string conversion goes through snprintf, a visible cost per response.
local known_status = {}                 -- the same lines, without the metatable
local plain_status = {}                 -- those whose response has a body and its length
local status_lines = setmetatable({}, {__index = function(t, status)
  if math.type(status) ~= "integer" or status < 100 or status > 599 then
    error(format("the handler returned an invalid status (%s)", tostring(status)), 0)
  end
  local s = "HTTP/1.1 " .. status .. " " .. (reasons[status] or "Unknown") .. "\r\nDate: "
  t[status], known_status[status] = s, s
  if status >= 200 and status ~= 204 and status ~= 304 then plain_status[status] = s end
  return s
end})
local lengths = setmetatable({}, {__index = function(t, n)
  local s = "\r\nContent-Length: " .. n
  if n < 4096 then t[n] = s end
  return s
end})

local PLAIN = "\r\nContent-Type: text/plain; charset=utf-8"
-- The rest of the common response's head after the Date, by body length:
-- one piece to write instead of three.
local plain_tails = setmetatable({}, {__index = function(t, n)
  local s = (n > 0 and PLAIN or "") .. lengths[n] .. "\r\n\r\n"
  if n < 4096 then t[n] = s end
  return s
end})

local function build_head(c, req, status, headers, length, body)
  local line = status_lines[status]
  if c.srv.closing or c.broken or (not req.body_done and req.expect_continue and not req.continued) then
    c.keep = false                        -- shutting down, a bad body, or one never asked for
  end
  local conn = not c.keep and "\r\nConnection: close"
    or (req.version == "1.0" and "\r\nConnection: keep-alive" or "")
  local framing
  if length then
    framing = (status >= 200 and status ~= 204 and status ~= 304) and lengths[length] or ""
  else
    framing = req.version == "1.1" and "\r\nTransfer-Encoding: chunked" or ""
  end
  if not headers then                     -- the common case: one concatenation
    if body then                          -- respond's: the whole response
      if length > 0 then
        return line .. c.srv.date .. PLAIN .. framing .. conn
          .. "\r\n\r\n" .. body
      end
      return line .. c.srv.date .. framing .. conn .. "\r\n\r\n" .. body
    end
    if length and length > 0 then
      return line .. c.srv.date .. PLAIN .. framing .. conn
    end
    return line .. c.srv.date .. framing .. conn
  end
  local head = line .. c.srv.date
  local parts, n, has_type = {head}, 1, false
  for k, v in pairs(headers) do
    local vs = type(v) == "table" and v or {v}
    for i = 1, #vs do
      local s = tostring(vs[i])
      if bad_header(k, s) then
        error(format("the handler returned a header that is not allowed: %q", tostring(k) .. ": " .. s), 0)
      end
      local l = lower(k)
      if l == "content-type" then has_type = true end
      if l ~= "content-length" and l ~= "transfer-encoding" and l ~= "connection" then
        parts[n + 1], parts[n + 2], parts[n + 3], parts[n + 4] = "\r\n", k, ": ", s
        n = n + 4
      end
    end
  end
  if length and length > 0 and not has_type then
    parts[n + 1] = PLAIN; n = n + 1
  end
  parts[n + 1], parts[n + 2] = framing, conn
  return concat(parts, "", 1, n + 2)
end

-- Writes; the "send" phase lets the sweeper reset a peer that does not
-- read.
local function send(c, data)
  set_phase_p(c.p, "send")
  c.sock:write(data)
  set_phase_p(c.p, "handler")
end

Response = {bytes = 0, status = 200}           -- defaults: two fields fewer per request
Response.__index = Response
Response.__name = "lasync.HttpResponse"

-- res:start([status [, headers]]): sends the head of a streamed response
-- (chunked unless headers give a Content-Length... which is not allowed:
-- a streamed body has no length known up front).
function Response:start(status, headers)
  if self.started then error("res:start: the response has already started", 2) end
  local c, req = self.conn, self.req
  self.status = status or self.status or 200
  if req.version ~= "1.1" then c.keep = false end  -- HTTP/1.0: the end is the close
  send(c, build_head(c, req, self.status, headers or self.headers, nil) .. "\r\n\r\n")
  self.started = true
end

-- res:write(data): sends a piece of the body (starting the response with
-- 200 if res:start was not called). Waits while the peer is slow.
function Response:write(data)
  if self.finished then error("res:write: the response is finished", 2) end
  if type(data) ~= "string" then error("res:write: string expected, got " .. type(data), 2) end
  if not self.started then self:start() end
  if #data == 0 or self.req.method == "HEAD" then return end
  self.bytes = self.bytes + #data
  local c = self.conn
  if self.req.version == "1.1" then send(c, format("%x\r\n", #data) .. data .. "\r\n")
  else send(c, data) end
end

-- res:finish([data]): the last piece; ends the response.
function Response:finish(data)
  if self.finished then return end
  if data then self:write(data) end
  if not self.started then self:start() end
  self.finished = true
  local c = self.conn
  if self.req.version == "1.1" and self.req.method ~= "HEAD" then send(c, "0\r\n\r\n") end
end

-- Sends a whole response from what the handler returned.
local function respond(c, req, status, body, headers)
  if known_status[status] then            -- the common case: no type() call
  elseif type(status) == "table" then
    local t = status
    status, body, headers = t.status or 200, t.body, t.headers
    if t.json ~= nil then
      body = require("async.json").encode(t.json)
      headers = headers or {}
      headers["Content-Type"] = headers["Content-Type"] or "application/json"
    end
  elseif status == nil then
    status = 204
  end
  if body == nil then body = ""
  elseif type(body) ~= "string" then
    error("the handler returned a body that is not a string (" .. type(body) .. ")", 0)
  end
  local n = #body
  if req.method == "HEAD" or status == 204 or status == 304 then body = "" end
  if headers then
    send(c, build_head(c, req, status, headers, n) .. "\r\n\r\n" .. body)
  else
    send(c, build_head(c, req, status, nil, n, body))
  end
  return status, #body
end

------------------------------------------------------------ a request

-- Hands the connection of req over to another protocol (WebSocket): the
-- bytes after the request, and the stream. The server lets go of it when
-- the handler returns. (An upgrade request with a body is read to its end
-- first: one more parser step.)
function M.take_over(req)
  local c = req.conn
  local leftover = ""
  if c.buf then
    local pos = c.pos
    if not req.body_done then pos = select(2, c.p:execute(c.buf, pos)) end
    leftover = c.buf:sub(pos)
    c.buf = nil
  end
  c.upgraded = true
  return c.sock, leftover
end

local function on_error(e)
  if getmetatable(e) == HandlerError or async.is_cancelled(e) then return e end
  return {error = e, traceback = debug.traceback(tostring(e), 2)}
end

-- Sends what the handler returned (or ends what it streamed) when the
-- connection's loop did not; returns the status and body length for the
-- log. An error in what it returned goes to slow_end's xpcall.
local function run_rest(srv, c, req, res, status, body, headers)
  if c.upgraded then return 101, 0 end
  res = res or c.made_res                         -- nil: never made, so never started
  if res and res.started then
    res:finish()
    return res.status, res.bytes
  end
  return respond(c, req, status, body, headers)   -- the common case was sent by requests
end

-- The end of a request after the handler ran (ok and status, body as
-- xpcall(run_rest, ...) returned them, or false and the handler's error);
-- returns whether the connection may go on.
local function conclude(srv, c, req, res, ok, status, body)
  if not res then
    res = c.made_res                              -- made by req.res, or nil
    if res then c.made_res = nil end
  end
  if c.upgraded then                              -- the WebSocket had the connection
    if not ok and not async.is_cancelled(status) and getmetatable(status) ~= HandlerError then
      srv:log_error(format("%s %s: %s", req.method, req.target, status.traceback))
    end
    if srv.access_log then srv:log_access(c, req, 101, 0) end
    return false
  end
  if not ok then
    local e = status
    if async.is_cancelled(e) then error(e, 0) end
    if c.expired or c.sock:closed() then return false end
    if getmetatable(e) ~= HandlerError then
      srv:log_error(format("%s %s: %s", req.method, req.target, e.traceback))
      e = M.error(500, "Internal Server Error")
    end
    if res and res.started then return false end  -- the head is out: only a reset says it
    local text = e.message .. "\n"
    status, body = e.status, #text
    send(c, build_head(c, req, status, {["Content-Type"] = "text/plain; charset=utf-8"}, #text)
      .. "\r\n\r\n" .. (req.method == "HEAD" and "" or text))
  end
  if srv.access_log then srv:log_access(c, req, status, body) end
  if not c.keep or c.broken then return false end
  if not req.body_done then                       -- the handler left the body unread
    if req.expect_continue and not req.continued then return false end
    while req:read() do end
  end
  c.current = nil
  return true
end

-- The slow end of a request: anything but the common response (see
-- requests). c.concluding tells conn_loop that an error raised here is
-- not the handler's.
local function slow_end(srv, c, req, res, status, body, headers)
  c.concluding = true
  local ok
  ok, status, body = xpcall(run_rest, on_error, srv, c, req, res, status, body, headers)
  local go_on = conclude(srv, c, req, res, ok, status, body)
  c.concluding = nil
  return go_on
end

-- Answers the connection's requests in order until it ends. A handler's
-- error is raised out of it (conn_loop answers it and calls again): one
-- xpcall per connection rather than one per request. c.current is the
-- request between its head and its end. Between requests the loop is
-- async.core.http_loop's serve (C): it answers plain requests itself
-- (the common response: what respond sends for them, byte for byte) and
-- hands back anything else at the point it reached.
local function requests(srv, c)
  local p, sock = c.p, c.sock                   -- neither changes while the loop runs
  local read, write = sock.read, sock.write     -- looked up once
  local handler, res_arg = srv.handler, srv.res_arg or false
  while true do
    local ev, a, b, plain, body, headers        -- plain: see async.core.http_parser
    if c.buf == nil and phase(p) == "idle" then
      ev, a, b, plain, body, headers = serve(p, c, srv, sock, read, write, handler, res_arg,
                                             Response, plain_status, plain_tails)
      if ev == "more" then
        set_phase_p(p, "head")
        ev, a, b, plain = next_event(c)
      elseif ev == "stop" then return
      end
    else
      ev, a, b, plain = next_event(c)
    end
    local req, res, status
    if ev == "slow" then                          -- serve ran the handler: a, b, plain
      req, res, status = a, b, plain
    else
      if ev == "eof" then return end
      if ev == "error" then return refuse(c, a, b) end
      if ev ~= "head" then return refuse(c, 400, "unexpected " .. ev) end
      set_phase_p(p, "handler")
      req = b                                           -- the parser set the metatable
      req.conn = c
      c.current = req
      c.keep = (plain or req.keep_alive) and not srv.closing
      if res_arg then                                   -- made only for a handler that takes it
        res = setmetatable({conn = c, req = req}, Response)
        req.res = res
      end
      status, body, headers = handler(req, res)
    end
    if not slow_end(srv, c, req, res, status, body, headers) or srv.closing then return end
    set_phase_p(p, "idle")
    local buf = c.buf                                   -- all read: no parser call to say so
    if buf and c.pos > #buf then c.buf = nil end
  end
end

-- Runs requests; answers a handler's error (conclude, which raises a
-- cancellation on) and enters again. Any other error goes on to serve_conn
-- as it was raised.
local function conn_loop(srv, c)
  while true do
    local ok, e = xpcall(requests, on_error, srv, c)
    if ok then return end
    local req = c.current
    if req == nil or c.concluding then           -- not the handler's: as it was raised
      if getmetatable(e) == HandlerError or async.is_cancelled(e) then error(e, 0) end
      error(e.error, 0)
    end
    if not conclude(srv, c, req, rawget(req, "res"), false, e) or srv.closing then return end
    set_phase(c, "idle")
    local buf = c.buf
    if buf and c.pos > #buf then c.buf = nil end
  end
end

local function tls_accept(ctx, sock) return require("async.tls").accept(ctx, sock) end

-- The task of a connection (net.listen's handler).
local function serve_conn(srv, sock)
  local c = {srv = srv, sock = sock, p = hp.new(srv.limits, RequestMT), seen = -1, age = 0}
  if srv.closing then return end
  if srv.nconn >= srv.max_connections then
    return refuse(c, 503, "too many connections")
  end
  srv.nconn = srv.nconn + 1
  srv.conns[c] = true
  if srv.access_log then c.peer = sock:peer() end
  local ok, err = true, nil
  if srv.tls then
    set_phase(c, "handshake")
    ok, err = pcall(tls_accept, srv.tls, sock)
    if ok then c.sock = err else c.expired = true end   -- a failed handshake is not logged
    set_phase(c, "head")
  end
  if ok then ok, err = pcall(conn_loop, srv, c) end
  if c.sock ~= sock then pcall(c.sock.close, c.sock) end
  srv.conns[c] = nil
  srv.nconn = srv.nconn - 1
  if not ok then
    if async.is_cancelled(err) then error(err, 0) end
    if getmetatable(err) ~= async.IOError and not c.expired then
      srv:log_error("connection failed: " .. tostring(err))
    end
  end
end

M.serve_conn = serve_conn
local class = require "async.class"
class.check_self(Request, RequestMT)   -- a wrong self raises at once (it wrote into
class.check_self(Response)             -- another type's object before)
return M
