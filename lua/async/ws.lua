-- async.ws: WebSocket (RFC 6455) over lasync's streams. Framing, masking,
-- fragments, pongs and the close handshake are wslay's (async.core.ws);
-- this file is the policy: the handshakes (upgrade from an HTTP handler,
-- connect to ws:// and wss:// URLs), the receive loop, pings with an idle
-- timeout, and close.
--
-- Backpressure: every send writes wslay's output to the stream at once,
-- and the stream's write waits while more than its high-water mark is
-- queued, so a slow peer slows its senders instead of growing a buffer.
local async = require "async"
local core = require "async.core.ws"

local format, lower = string.format, string.lower
local M = {}

local WebSocket = {}
WebSocket.__index = WebSocket
WebSocket.__name = "lasync.WebSocket"

local function closed_error(op)
  local e = setmetatable({kind = "IOError", code = "ECLOSED", op = op,
                          message = "the WebSocket is closed"}, async.IOError)
  return e
end

local function ping_loop(self, interval, timeout)
  while true do
    async.sleep(interval)
    local seen = self.mark
    if not pcall(function() self.core:send("ping", "") self:_flush() end) then return end
    async.sleep(timeout)
    if self.mark == seen then                       -- nothing came back: the peer is gone
      self.ended = self.ended or {1006, "no answer to a ping"}
      self.sock:abort()
      return
    end
  end
end

local function new_ws(sock, is_server, leftover, opts)
  local self = setmetatable({sock = sock, core = core.new(is_server, opts.max_message),
                             data = {}, kinds = {}, head = 1, tail = 0, mark = 0,
                             close_timeout = opts.close_timeout or 5}, WebSocket)
  if leftover and #leftover > 0 then self:_feed(leftover) end
  if opts.ping_interval then
    self.pinger = async.spawn(ping_loop, self, opts.ping_interval,
                              opts.ping_timeout or opts.ping_interval)
  end
  return self
end

-- Writes what wslay has produced; waits while the peer is slow.
function WebSocket:_flush()
  local out = self.core:output()
  if #out > 0 then self.sock:write(out) end
end

function WebSocket:_feed(bytes)
  self.mark = self.mark + 1
  local list = self.core:feed(bytes)
  if list then
    for i = 1, #list, 2 do
      local kind = list[i]
      if kind == "text" or kind == "binary" then
        local t = self.tail + 1
        self.tail = t
        self.data[t], self.kinds[t] = list[i + 1], kind
      end
    end
  end
  self:_flush()                                     -- pongs, the close reply
end

-- Marks the end: the peer's close code and reason, or ours after a
-- protocol failure (1002, 1007, 1009), or 1006 when the stream just ended.
function WebSocket:_finish()
  local received, _, code, reason, failed, sent = self.core:state()
  if received then self.ended = {code, reason}
  elseif failed then self.ended = {sent ~= 0 and sent or 1002, "protocol error"}
  else return false end
  if self.pinger then self.pinger:cancel() end
  pcall(self._flush, self)
  self.sock:close()
  return true
end

-- ws:recv(): the next message and its kind ("text" or "binary"); at the
-- end nil, the close code and the reason. Waits.
function WebSocket:recv()
  while true do
    local h = self.head
    if h <= self.tail then
      local d, k = self.data[h], self.kinds[h]
      self.data[h], self.kinds[h] = nil, nil
      self.head = h + 1
      return d, k
    end
    if self.ended or self:_finish() then return nil, self.ended[1], self.ended[2] end
    if self.reading then error("ws:recv: another task is already receiving", 2) end
    self.reading = true
    local ok, bytes = pcall(self.sock.read, self.sock)
    self.reading = false
    if not ok then
      if async.is_cancelled(bytes) then error(bytes, 0) end
      if not self.ended then self.ended = {1006, tostring(bytes)} end
      bytes = nil
    end
    if not bytes then
      self.ended = self.ended or {1006, "the connection ended without a close frame"}
      if self.pinger then self.pinger:cancel() end
      self.sock:close()
    else
      self:_feed(bytes)
    end
  end
end

-- for msg, kind in ws:messages() do ... end: ends at the close.
function WebSocket:messages()
  return function() return self:recv() end
end

-- ws:send(data [, "text"|"binary"]): text by default (must be UTF-8).
function WebSocket:send(data, kind)
  if type(data) ~= "string" then error("ws:send: string expected, got " .. type(data), 2) end
  if kind ~= nil and kind ~= "text" and kind ~= "binary" then
    error("ws:send: kind must be \"text\" or \"binary\"", 2)
  end
  if self.ended or self.closing then error(closed_error("send"), 2) end
  if not self.core:send(kind or "text", data) then error(closed_error("send"), 2) end
  self:_flush()
end

-- ws.broadcast(peers, data [, kind]): sends one message to every server-side
-- WebSocket in `peers` (a list, or a set: a table whose keys are them),
-- framed once. Peers that are closed or fail are skipped; waits for slow
-- peers as send does. Returns how many it went to.
function M.broadcast(peers, data, kind)
  if type(peers) ~= "table" then error("ws.broadcast: a table of WebSockets expected", 2) end
  if type(data) ~= "string" then error("ws.broadcast: string expected, got " .. type(data), 2) end
  local frame = core.frame(kind or "text", data)
  local n = 0
  local function one(w)
    if getmetatable(w) == WebSocket and not w.client and not w.ended and not w.closing
       and pcall(w.sock.write, w.sock, frame) then n = n + 1 end
  end
  if #peers > 0 then for i = 1, #peers do one(peers[i]) end
  else for w in pairs(peers) do one(w) end end
  return n
end

-- Starts the close handshake with 1001 (the server's graceful shutdown):
-- the task in recv sees the peer's answer and its loop ends. Never waits
-- long: a close frame is small.
function WebSocket:_going_away()
  if self.ended or self.closing then return end
  local _, sent = self.core:state()
  if not sent and pcall(self.core.close, self.core, 1001, "the server is shutting down") then
    pcall(self._flush, self)
  end
end

-- ws:ping([data]): sends a ping (the pong is handled by recv).
function WebSocket:ping(data)
  if self.ended or self.closing then error(closed_error("ping"), 2) end
  self.core:send("ping", data or "")
  self:_flush()
end

-- ws:close([code [, reason]]): the close handshake: sends the close frame,
-- waits up to close_timeout for the peer's, then closes the stream.
function WebSocket:close(code, reason)
  if self.closing then return end
  self.closing = true
  if self.pinger then self.pinger:cancel() end
  if self.ended then self.sock:close(); return end
  local _, sent = self.core:state()
  if not sent then
    local ok, err = pcall(self.core.close, self.core, code, reason)
    if not ok then self.closing = false; error(err, 2) end
    pcall(self._flush, self)
  end
  if not self.reading then
    pcall(async.timeout, self.close_timeout, function()
      while not self.core:state() do
        local bytes = self.sock:read()
        if not bytes then break end
        self.mark = self.mark + 1
        self.core:feed(bytes)
      end
    end)
  end
  self.ended = self.ended or {code or 1000, reason or ""}
  self.sock:close()
end

WebSocket.__close = WebSocket.close

-- ws:abort(): drops the connection at once (no close handshake): for a
-- peer that is too slow or misbehaves. A task in recv sees code 1006.
function WebSocket:abort()
  self.closing = true
  self.ended = self.ended or {1006, "aborted"}
  if self.pinger then self.pinger:cancel() end
  self.sock:abort()
end

function WebSocket:closed() return self.ended ~= nil or self.closing == true end

function WebSocket:__tostring()
  return format("WebSocket<%s%s>", tostring(self.sock), self.ended and " closed" or "")
end

---------------------------------------------------------------- handshakes

local function has_token(v, token)
  if not v then return false end
  for t in lower(v):gmatch("[^,%s]+") do if t == token then return true end end
  return false
end

local function choose_protocol(offered, supported)
  if not offered or not supported then return nil end
  for p in offered:gmatch("[^,%s]+") do
    for _, s in ipairs(supported) do if s == p then return p end end
  end
end

-- ws.upgrade(req [, {max_message=, ping_interval=, ping_timeout=,
-- close_timeout=, protocols=}]): answers the request with 101 and returns
-- the WebSocket. Raises an http.error (400, 426) for a request that is not
-- a WebSocket handshake; the server answers it.
function M.upgrade(req, opts)
  local http = require "async.http.server"
  opts = opts or {}
  if type(req) ~= "table" or not req.conn then error("ws.upgrade: an HTTP request expected", 2) end
  local h, c = req.headers, req.conn
  if req.method ~= "GET" then error(http.error(405, "a WebSocket handshake is a GET"), 0) end
  if not has_token(h.upgrade, "websocket") or not has_token(h.connection, "upgrade") then
    error(http.error(426, "this resource needs a WebSocket upgrade"), 0)
  end
  local key = h["sec-websocket-key"]
  if h["sec-websocket-version"] ~= "13" or not key or #key ~= 24 then
    error(http.error(400, "bad Sec-WebSocket-Key or Sec-WebSocket-Version"), 0)
  end
  if c.current ~= req or req.res.started then error("ws.upgrade: the response has started", 2) end
  local proto = choose_protocol(h["sec-websocket-protocol"], opts.protocols)
  c.sock:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
               "Sec-WebSocket-Accept: " .. core.accept_key(key) .. "\r\n" ..
               (proto and ("Sec-WebSocket-Protocol: " .. proto .. "\r\n") or "") .. "\r\n")
  req.res.started, req.res.finished, req.res.status = true, true, 101
  local sock, leftover = http.take_over(req)
  local ws = new_ws(sock, true, leftover, opts)
  c.ws = ws                                         -- the server's shutdown says 1001 to it
  ws.protocol = proto
  return ws
end

local function parse_url(url)
  local scheme, rest = tostring(url):match("^(wss?)://(.+)$")
  if not scheme then error("ws.connect: a ws:// or wss:// URL expected, got " .. tostring(url), 3) end
  local hostport, path = rest:match("^([^/?#]+)(.*)$")
  if not hostport then error("ws.connect: no host in " .. url, 3) end
  local host, port = hostport:match("^%[(.+)%]:?(%d*)$")
  if not host then host, port = hostport:match("^([^:]+):?(%d*)$") end
  port = tonumber(port) or (scheme == "wss" and 443 or 80)
  if path == "" then path = "/" end
  return scheme, host, port, hostport, path
end

local function handshake(sock, hostport, path, opts)
  local key = core.new_key()
  local extra = {}
  for k, v in pairs(opts.headers or {}) do
    if tostring(v):find("[\r\n]") then error("ws.connect: CR or LF in header " .. tostring(k), 4) end
    extra[#extra + 1] = k .. ": " .. tostring(v) .. "\r\n"
  end
  if opts.protocols then extra[#extra + 1] = "Sec-WebSocket-Protocol: " .. table.concat(opts.protocols, ", ") .. "\r\n" end
  sock:write(format("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
                    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                    path, hostport, key, table.concat(extra)))
  local head = sock:read_until("\r\n\r\n", 16384)
  if not head then error("ws.connect: the server closed the connection during the handshake", 0) end
  local status = head:match("^HTTP/1%.%d (%d%d%d)")
  local headers = {}
  for k, v in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do headers[lower(k)] = v end
  if status ~= "101" then
    error(format("ws.connect: the server answered %s instead of 101", tostring(status)), 0)
  end
  if headers["sec-websocket-accept"] ~= core.accept_key(key) then
    error("ws.connect: the server's Sec-WebSocket-Accept does not match", 0)
  end
  return headers["sec-websocket-protocol"]
end

-- ws.connect(url [, {timeout=, headers=, protocols=, max_message=,
-- ping_interval=, ping_timeout=, close_timeout=, tls=}]): a WebSocket.
function M.connect(url, opts)
  if opts ~= nil and type(opts) ~= "table" then error("ws.connect: options must be a table", 2) end
  opts = opts or {}
  local scheme, host, port, hostport, path = parse_url(url)
  return async.timeout(opts.timeout or 30, function()
    local sock = async.net.connect(host, port)
    local ok, proto = pcall(function()
      if scheme == "wss" then sock = require("async.tls").connect(sock, host, opts.tls) end
      return handshake(sock, hostport, path, opts)
    end)
    if not ok then sock:close(); error(proto, 0) end
    local ws = new_ws(sock, false, nil, opts)
    ws.protocol = proto
    ws.client = true                                -- its frames are masked: no broadcast
    return ws
  end)
end

M.WebSocket = WebSocket
return M
