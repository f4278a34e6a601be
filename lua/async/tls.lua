-- async.tls: TLS over a lasync stream. OpenSSL (async.core.tls) works on
-- memory buffers; this file moves bytes between it and the stream, so a
-- TLS stream waits, times out and is cancelled as the TCP stream under it.
-- A TlsStream has the stream methods the HTTP server and WebSocket use:
-- read, read_line, read_until, read_exactly, write, shutdown, close, abort,
-- closed, peer, address, buffered, set_read_buffer.
local async = require "async"
local core = require "async.core.tls"

local M = {}

local TlsStream = {}
TlsStream.__index = TlsStream
TlsStream.__name = "lasync.TlsStream"

local function new(sock, session)
  return setmetatable({sock = sock, s = session, buf = "", eof = false}, TlsStream)
end

local function flush(self)
  local out = self.s:output()
  if #out > 0 then self.sock:write(out) end
end

-- Runs the handshake to its end over the stream.
local function handshake(self)
  while true do
    local done = self.s:handshake()
    flush(self)
    if done then return end
    local bytes = self.sock:read()
    if not bytes then error("tls: the peer closed the connection during the handshake", 0) end
    self.s:feed(bytes)
  end
end

-- Adds decrypted bytes to buf; false at the end of the stream.
local function fill(self)
  while true do
    if self.eof then return false end
    local plain = self.s:read()
    flush(self)                                  -- alerts, tickets, key updates
    if plain then self.buf = self.buf .. plain; return true end
    if plain == false then self.eof = true; return false end
    local bytes = self.sock:read()
    if not bytes then self.eof = true; return false end
    self.s:feed(bytes)
  end
end

function TlsStream:read(n)
  if self.s == nil then error("read: attempt to use a closed stream", 2) end
  if #self.buf == 0 and not fill(self) then return nil end
  local b = self.buf
  n = n or 65536
  if #b <= n then self.buf = ""; return b end
  self.buf = b:sub(n + 1)
  return b:sub(1, n)
end

function TlsStream:read_until(sep, limit)
  limit = limit or 65536
  local from = 1
  while true do
    local i = self.buf:find(sep, from, true)
    if i then
      local out = self.buf:sub(1, i + #sep - 1)
      self.buf = self.buf:sub(i + #sep)
      return out
    end
    if #self.buf >= limit then error("read_until: no separator within " .. limit .. " bytes", 2) end
    from = math.max(1, #self.buf - #sep + 2)
    if not fill(self) then
      if #self.buf == 0 then return nil end
      error("read_until: the stream ended before the separator", 2)
    end
  end
end

function TlsStream:read_line(limit)
  local line = self:read_until("\n", limit)
  if line == nil then
    if #self.buf > 0 then local b = self.buf; self.buf = ""; return b end
    return nil
  end
  return (line:gsub("\r?\n$", ""))
end

function TlsStream:read_exactly(n)
  while #self.buf < n do
    if not fill(self) then error("read_exactly: the stream ended early", 2) end
  end
  local out = self.buf:sub(1, n)
  self.buf = self.buf:sub(n + 1)
  return out
end

-- write(...): the pieces written as one, as a Stream's write (the HTTP
-- server passes a response's head and body apart).
function TlsStream:write(data, ...)
  if self.s == nil then error("write: attempt to use a closed stream", 2) end
  if select("#", ...) > 0 then
    local pieces = {data, ...}
    for i = 1, select("#", ...) + 1 do
      if type(pieces[i]) ~= "string" and type(pieces[i]) ~= "number" then
        error(string.format("bad argument #%d to 'write' (string expected, got %s)", i, type(pieces[i])), 2)
      end
    end
    data = table.concat(pieces)
  end
  self.s:write(data)
  flush(self)
end

function TlsStream:shutdown()
  if self.s then
    self.s:close_notify()
    pcall(flush, self)
  end
  return self.sock:shutdown()
end

-- close(): sends close_notify (best effort) and closes the stream.
function TlsStream:close()
  local s = self.s
  if s == nil then return end
  self.s = nil
  if not self.sock:closed() then
    s:close_notify()
    local out = s:output()
    if #out > 0 then pcall(self.sock.write, self.sock, out) end
  end
  s:free()
  self.sock:close()
end

function TlsStream:abort()
  if self.s then self.s:free(); self.s = nil end
  self.sock:abort()
end

TlsStream.__close = TlsStream.close
TlsStream.__gc = function(self) if self.s then self.s:free() end end

function TlsStream:closed() return self.s == nil or self.sock:closed() end
function TlsStream:peer() return self.sock:peer() end
function TlsStream:address() return self.sock:address() end
function TlsStream:buffered()
  local r, w = self.sock:buffered()
  return r + #self.buf, w
end
function TlsStream:set_read_buffer(n) return self.sock:set_read_buffer(n) end
function TlsStream:set_nodelay(on) return self.sock:set_nodelay(on) end
function TlsStream:alpn() return self.s and self.s:alpn() end
function TlsStream:__tostring() return "TlsStream<" .. tostring(self.sock) .. ">" end

-- tls.server_context{cert=, key=}: for http.serve{tls=} (ALPN http/1.1).
function M.server_context(opts)
  if type(opts) ~= "table" or type(opts.cert) ~= "string" or type(opts.key) ~= "string" then
    error("tls: {cert = path, key = path} expected", 2)
  end
  return core.server_context(opts.cert, opts.key)
end

-- tls.accept(ctx, sock): the server side of the handshake; a TlsStream.
function M.accept(ctx, sock)
  local t = new(sock, ctx:session())
  handshake(t)
  return t
end

-- tls.connect(sock, hostname [, {verify=true, ca=path}]): the client side;
-- checks the certificate against hostname unless verify is false.
function M.connect(sock, hostname, opts)
  opts = opts or {}
  local ctx = core.client_context(opts.verify ~= false, opts.ca)
  local t = new(sock, ctx:session(hostname))
  t.ctx = ctx
  handshake(t)
  return t
end

require("async.class").check_self(TlsStream)  -- a wrong self raises at once
return M
