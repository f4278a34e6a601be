-- tests/redissupport.lua: a real redis-server for the Redis and job queue
-- suites, started in a temporary directory on a free port (and a unix
-- socket there), stopped by server:stop() or when the test file ends.
local io_ = require "iosupport"
local M = {}

-- The path of redis-server, or nil and why not (the suites skip then).
function M.find()
  local p = io.popen("command -v redis-server 2>/dev/null")
  local path = p:read("l")
  p:close()
  if not path or path == "" then return nil, "redis-server is not installed (make deps)" end
  return path
end

-- A port nobody listens on now (bound by the kernel, then released).
local function free_port()
  local l = require("async.core.net").tcp_listen("127.0.0.1", 0)
  local _, port = l:address()
  l:close()
  return port
end

local Server = {}
Server.__index = Server
Server.__close = function(s) M.cleanup(s) end

-- Starts (or restarts, on the same port and directory) the server and
-- waits until it accepts connections.
function Server:start()
  self.proc = async.process.spawn{"redis-server", "--port", tostring(self.port), "--bind", "127.0.0.1",
    "--dir", self.dir, "--save", "", "--appendonly", "no", "--unixsocket", self.dir .. "/redis.sock",
    "--loglevel", "notice", "--enable-debug-command", "yes", "--daemonize", "no", stdout = "pipe", stderr = "pipe", stdin = "ignore"}
  async.timeout(10, function()
    while true do
      local line = self.proc.stdout:read_line()
      if not line then error("redis-server exited: " .. tostring(self.proc.stderr:read()), 0) end
      if line:find("Ready to accept connections", 1, true) then break end
    end
  end)
  -- Keep draining its log so it never blocks on a full pipe.
  local out = self.proc.stdout
  self.drain = async.spawn(function() while out:read() do end end)
end

-- Stops it: SIGKILL when `hard` (a crash), else SIGTERM; waits for the exit.
function Server:stop(hard)
  if not self.proc then return end
  self.proc:kill(hard and "SIGKILL" or "SIGTERM")
  self.proc:wait()
  pcall(self.drain.await, self.drain)
  self.proc:close()
  self.proc = nil
end

function Server:url(db) return ("redis://127.0.0.1:%d/%d"):format(self.port, db or 0) end

-- Starts a server; skips the calling test (lu.skip) when there is none.
function M.start(lu)
  local path, why = M.find()
  if not path then lu.skip(why) end
  local s = setmetatable({dir = io_.tmpdir(), port = free_port()}, Server)
  s:start()
  return s
end

function M.cleanup(s)
  if not s then return end
  s:stop()
  io_.rmtree(s.dir)
end

return M
