-- async.net: TCP and unix-socket streams, servers and UDP sockets.
-- Sockets, buffers and the accept queue are C (async.core.net,
-- async.core.udp, the Stream type of async.stream); this file is the
-- policy: resolving names, trying each address, connect timeouts, and
-- the server that runs every connection's handler in a task of its own.
local async = require "async"
local core = require "async.core.net"
local udp = require "async.core.udp"
local dns = require "async.dns"
local stream = require "async.stream"

local IOError = stream.IOError
local type, error, pcall, xpcall, tostring, format = type, error, pcall, xpcall, tostring, string.format
local getmetatable, setmetatable, pairs = getmetatable, setmetatable, pairs
local math_type = math.type

local net = {IOError = IOError}

local check = require "async.internal.check"
local argerror = check.argerror

local function check_host(host, i, what)
  if type(host) ~= "string" or host == "" then
    argerror(i, what, "host name or IP address expected, got " ..
             (host == "" and "an empty string" or type(host)), 4)
  end
  return (host:match("^%[(.*)%]$")) or host   -- "[::1]" as in URLs
end

local function check_port(port, i, what)
  if math_type(port) ~= "integer" or port < 0 or port > 65535 then
    argerror(i, what, "port must be an integer 0..65535, got " .. tostring(port), 4)
  end
end

local function check_opts(opts, i, what)
  opts = check.opts(opts, i, what, 5)   -- blames the caller of net.x
  local t = opts.timeout
  if t ~= nil and (type(t) ~= "number" or t ~= t or t < 0) then
    argerror(i, what, "timeout must be a number of seconds, got " .. tostring(t), 4)
  end
  return opts
end

-- The addresses to try for host: the literal itself, or what DNS returns.
local function addresses(host, family)
  if core.is_ip(host) then return {host} end
  return dns.resolve(host, family)
end

-- Tries each address in turn (as getaddrinfo ordered them); raises the
-- last failure. Cancellation and misuse are not failures to move past.
local function connect_any(host, port, opts)
  local addrs = addresses(host, opts.family)
  local last
  for i = 1, #addrs do
    local ok, s = pcall(core.tcp_connect, addrs[i], port)
    if ok then
      if opts.nodelay ~= false then s:set_nodelay(true) end
      return s
    end
    if getmetatable(s) ~= IOError then error(s, 0) end
    last = s
  end
  error(last, 0)
end

local function with_timeout(opts, fn, ...)
  if opts.timeout then return async.timeout(opts.timeout, fn, ...) end
  return fn(...)
end

-- connect(host, port [, {timeout=, family=, nodelay=}]): a Stream.
function net.connect(host, port, opts)
  host = check_host(host, 1, "connect")
  check_port(port, 2, "connect")
  opts = check_opts(opts, 3, "connect")
  return with_timeout(opts, connect_any, host, port, opts)
end

-- connect_unix(path [, {timeout=}]): a Stream on a unix domain socket.
function net.connect_unix(path, opts)
  if type(path) ~= "string" or path == "" then argerror(1, "connect_unix", "path expected") end
  opts = check_opts(opts, 2, "connect_unix")
  return with_timeout(opts, core.pipe_connect, path)
end

----------------------------------------------------------------- servers

local Server = {}
Server.__index = Server
Server.__name = "lasync.Server"

local function report(srv, err, tb, desc)
  if srv.on_error then
    local ok, e = pcall(srv.on_error, err, desc)
    if ok then return end
    tb = tb .. "\n(and then on_error failed: " .. tostring(e) .. ")"
  end
  if desc == "accept" then
    local ip, port = srv.listener:address()
    io.stderr:write(format("lasync: server %s%s: %s (connections wait until it can accept; "
                           .. "reported once until an accept succeeds)\n", ip, port and ":" .. port or "", tb))
  else
    io.stderr:write(format("lasync: connection handler failed (%s): %s\n", desc, tb))
  end
  io.stderr:flush()
end

-- The body of a connection's task: runs the handler, then closes the
-- connection (queued output is still flushed) and reports a failure.
local function handle(srv, conn)
  local me, desc, tb = async.current(), tostring(conn), nil
  local ok, err = xpcall(srv.handler, function(e)
    tb = debug.traceback(tostring(e), 2)
    return e
  end, conn)
  conn:close()
  srv.active[me] = nil
  srv.count = srv.count - 1
  if not ok and not async.is_cancelled(err) then report(srv, err, tb, desc) end
end

local function accept_loop(srv)
  local l = srv.listener
  while true do
    local ok, conn = pcall(l.accept, l)
    if ok then
      if srv.nodelay and conn:kind() == "tcp" then pcall(conn.set_nodelay, conn, true) end
      srv.count = srv.count + 1
      srv.active[async.spawn(handle, srv, conn)] = true
    elseif l:closed() then
      return
    elseif getmetatable(conn) ~= IOError then     -- cancelled: the server ends
      l:close()
      error(conn, 0)
    else                                          -- EMFILE and the like: go on
      -- once per burst: the listener marks the failures after the first
      if not conn.repeated then report(srv, conn, tostring(conn), "accept") end
      async.sleep(0.05)                           -- the clients wait in the backlog
    end
  end
end

local function serve(listener, handler, opts, what)
  if type(handler) ~= "function" and not (getmetatable(handler) or {}).__call then
    listener:close()
    argerror(3, what, "handler function expected, got " .. type(handler), 3)
  end
  local srv = setmetatable({listener = listener, handler = handler, active = {}, count = 0,

                            on_error = opts.on_error, nodelay = opts.nodelay ~= false}, Server)
  srv.acceptor = async.spawn(accept_loop, srv)
  return srv
end

-- listen(host, port, handler [, {backlog=, reuseport=, nodelay=, on_error=}]):
-- a Server running handler(conn) in a task of its own for each connection.
function net.listen(host, port, handler, opts)
  host = check_host(host, 1, "listen")
  check_port(port, 2, "listen")
  opts = check_opts(opts, 4, "listen")
  local ip = core.is_ip(host) and host or dns.resolve(host, opts.family)[1]
  return serve(core.tcp_listen(ip, port, opts.backlog, opts.reuseport), handler, opts, "listen")
end

-- listen_unix(path, handler [, {backlog=, on_error=}])
function net.listen_unix(path, handler, opts)
  if type(path) ~= "string" or path == "" then argerror(1, "listen_unix", "path expected") end
  opts = check_opts(opts, 3, "listen_unix")
  return serve(core.pipe_listen(path, opts.backlog), handler, opts, "listen_unix")
end

-- server:close(): stops accepting; running handlers go on.
function Server:close() self.listener:close() end

function Server:closed() return self.listener:closed() end

-- server:address(): ip, port (or the path of a unix socket).
function Server:address()
  if not self.addr then self.addr = {n = 2, self.listener:address()} end
  return self.addr[1], self.addr[2]
end

-- server:connections(): how many handlers are running.
function Server:connections() return self.count end

-- server:serve_forever(): waits until the server is closed. Cancelling
-- the waiting task closes the server.
function Server:serve_forever()
  self:address()                          -- still known after close
  self.acceptor:await()
end

-- server:shutdown([timeout]): stops accepting, waits for the running
-- handlers up to timeout seconds (default: as long as they take), then
-- cancels those still running and waits for them. Returns how many were
-- cancelled.
function Server:shutdown(timeout)
  self:address()
  self:close()
  local tasks = {}
  for t in pairs(self.active) do tasks[#tasks + 1] = t end
  if #tasks == 0 then return 0 end
  local _, pending = async.wait(tasks, {timeout = timeout})
  for i = 1, #pending do pending[i]:cancel("the server is shutting down") end
  if #pending > 0 then async.wait(pending) end
  return #pending
end

Server.__close = Server.close

function Server:__tostring()
  return format("Server<%s, %d connection%s>", tostring(self.listener), self.count,
                self.count == 1 and "" or "s")
end

--------------------------------------------------------------------- UDP

-- udp_bind(host, port [, {reuseaddr=}]): a UDP socket bound to host:port.
function net.udp_bind(host, port, opts)
  host = check_host(host, 1, "udp_bind")
  check_port(port, 2, "udp_bind")
  opts = check_opts(opts, 3, "udp_bind")
  local ip = core.is_ip(host) and host or dns.resolve(host, opts.family)[1]
  return udp.udp_bind(ip, port, opts.reuseaddr)
end

-- udp_connect(host, port): a UDP socket on an ephemeral port whose peer
-- is host:port (use send and recv).
function net.udp_connect(host, port, opts)
  host = check_host(host, 1, "udp_connect")
  check_port(port, 2, "udp_connect")
  opts = check_opts(opts, 3, "udp_connect")
  local ip = core.is_ip(host) and host or dns.resolve(host, opts.family)[1]
  local s = udp.udp_bind(core.is_ip(ip) == 6 and "::" or "0.0.0.0", 0)
  local ok, err = pcall(s.connect, s, ip, port)
  if not ok then s:close(); error(err, 0) end
  return s
end

net.is_ip = core.is_ip
net.Server = Server

require("async.class").check_self(Server)  -- a wrong self raises at once

return net
