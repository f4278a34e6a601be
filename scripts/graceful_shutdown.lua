-- graceful_shutdown.lua: a server that shuts down cleanly on SIGTERM.
--
--   lasync scripts/graceful_shutdown.lua serve [port]   the server alone; kill -TERM it
--   lasync scripts/graceful_shutdown.lua                the server and a client that
--                                                        checks the shutdown, in one process
--
-- On SIGTERM the server stops accepting (new connections are refused),
-- lets the requests in flight finish for up to GRACE seconds, cancels the
-- ones still running after that (their cleanup runs), and ends.
local async = require "async"
local net, signal = async.net, async.signal

local GRACE = 0.3

-- A request is "WORK <ms>\n": the handler works that long and answers.
local function handler(conn)
  for line in conn:lines() do
    local ms = tonumber(line:match("^WORK (%d+)$"))
    if not ms then conn:write("ERR bad request\n") return end
    local ok, err = pcall(async.sleep, ms / 1000)   -- the "work"
    if not ok then
      conn:write("ABORTED shutting down\n")         -- cleanup on cancellation
      error(err, 0)
    end
    conn:write("DONE ", ms, "\n")
  end
end

local function run_server(port, started)
  local srv = net.listen("127.0.0.1", port, handler, {on_error = function() end})
  local host, p = srv:address()
  if started then started:resolve(p, srv) else print(("serving on %s:%d; kill -TERM %d to stop"):format(host, p, signal.getpid())) end
  signal.wait("SIGTERM")
  local cancelled = srv:shutdown(GRACE)
  print(("SIGTERM: stopped accepting; %d request(s) cut off after %.1f s of grace"):format(cancelled, GRACE))
  return cancelled
end

if arg[1] == "serve" then
  run_server(tonumber(arg[2]) or 7001)
  return
end

-- The whole story in one process: the server task, clients, and the
-- supervisor's SIGTERM sent to ourselves.
local started = async.future()
local server = async.spawn(run_server, 0, started)
local port, srv = started:await()

local function request(ms)
  local c <close> = net.connect("127.0.0.1", port)
  c:write("WORK ", ms, "\n")
  return c:read_line()
end

local quick = async.spawn(request, 100)      -- finishes within the grace period
local slow = async.spawn(request, 10000)     -- does not: it is cancelled
-- Wait for the evidence, not for "long enough" (a loaded machine may take
-- longer than any guess): both connections accepted, the listener closed.
while srv:connections() < 2 do async.sleep(0.001) end   -- both are in flight now
signal.kill(signal.getpid(), "SIGTERM")      -- what a supervisor would send
while not srv:closed() do async.sleep(0.001) end         -- it stopped accepting
local ok, err = pcall(net.connect, "127.0.0.1", port)

assert(quick:await() == "DONE 100", "the request in flight finished")
assert(slow:await() == "ABORTED shutting down", "the long one was told, then closed")
assert(not ok and err.code == "ECONNREFUSED", "no new connections: " .. tostring(err))
assert(server:await() == 1, "exactly one request was cut off")
print("quick request: DONE; slow request: ABORTED; new connection: " .. err.code)
