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
  local argv = {"redis-server", "--port", tostring(self.port), "--bind", "127.0.0.1",
    "--dir", self.dir, "--save", "", "--appendonly", "no", "--unixsocket", self.dir .. "/redis.sock",
    "--loglevel", "notice", "--enable-debug-command", "yes", "--daemonize", "no", stdout = "pipe", stderr = "pipe", stdin = "ignore"}
  for _, a in ipairs(self.extra or {}) do argv[#argv + 1] = a end
  self.proc = async.process.spawn(argv)
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

-- A cluster of n masters (no replicas): n servers with cluster mode on,
-- joined by redis-cli --cluster create (n = 1: given every slot), returned once every node says
-- cluster_state:ok. cluster.nodes[i] are servers; cluster.seeds their
-- "host:port"; <close> or M.cleanup_cluster stops them all.
local Cluster = {}
Cluster.__index = Cluster
Cluster.__close = function(c) M.cleanup_cluster(c) end
function Cluster:addr(i) return "127.0.0.1:" .. self.nodes[i].port end

local function cli(...)
  local argv = {"redis-cli", ...}
  argv.stdout, argv.stderr, argv.stdin = "pipe", "pipe", "ignore"
  local p = async.process.spawn(argv)
  local out = p.stdout:read() or ""
  local err = p.stderr:read() or ""
  local code = p:wait()
  p:close()
  return code, out .. err
end
M.cli = cli

function M.start_cluster(lu, n)
  local path, why = M.find()
  if not path then lu.skip(why) end
  local c = setmetatable({nodes = {}, seeds = {}}, Cluster)
  for i = 1, n or 3 do
    local s = setmetatable({dir = io_.tmpdir(), port = free_port()}, Server)
    s.extra = {"--cluster-enabled", "yes", "--cluster-config-file", s.dir .. "/nodes.conf",
               -- a killed node must not fail the others' slots during a test
               "--cluster-node-timeout", "60000", "--cluster-require-full-coverage", "no",
               -- the bus port is port + 10000 unless given: past 65535 for a free
               -- port above 55535, and the server would not start
               "--cluster-port", tostring(free_port())}
    c.nodes[i] = s
    s:start()
    c.seeds[i] = "127.0.0.1:" .. s.port
  end
  local code, out
  if #c.nodes == 1 then   -- one node holds every slot: no join to wait for (the misuse sweep)
    code, out = cli("-p", tostring(c.nodes[1].port), "CLUSTER", "ADDSLOTSRANGE", "0", "16383")
  else
    local args = {"--cluster", "create", table.unpack(c.seeds)}
    for _, a in ipairs{"--cluster-replicas", "0", "--cluster-yes"} do args[#args + 1] = a end
    code, out = cli(table.unpack(args))
  end
  if code ~= 0 then M.cleanup_cluster(c); error("redis-cli --cluster create failed: " .. out, 0) end
  -- every node agrees the cluster is up (gossip takes a moment)
  async.timeout(20, function()
    for _, s in ipairs(c.nodes) do
      while true do
        local _, info = cli("-p", tostring(s.port), "CLUSTER", "INFO")
        if info:find("cluster_state:ok", 1, true) then break end
        async.sleep(0.02)
      end
    end
  end)
  return c
end

function M.cleanup_cluster(c)
  for _, s in ipairs(c.nodes) do M.cleanup(s) end
  c.nodes = {}
end

-- Waits until every redis connection is freed (its handle closed).
function M.no_connections()
  io_.eventually(function() return async.redis.stats().connections == 0 end,
                 "every redis connection freed")
end

function M.cleanup(s)
  if not s then return end
  s:stop()
  io_.rmtree(s.dir)
end

return M
