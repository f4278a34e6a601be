-- multicore_server.lua: one server over every core. Each thread runs a host
-- of its own (its own loop and tasks) and listens on the same port with
-- reuseport, so the kernel spreads the connections over the threads; the
-- main thread talks to them over their channels.
-- asyncio: one process per core, each with its own loop (multiprocessing).
local async = require "async"
local net = require "async.net"

-- The body of each thread: fn(ch, ...) where ch is its end of the channels.
-- It crosses to the thread as bytecode, so it uses no upvalues.
local function serve(ch, id, port)
  local net = require "async.net"      -- modules are per host: require in the thread
  local handled = 0
  local server = net.listen("127.0.0.1", port, function(conn)
    for line in conn:lines() do
      handled = handled + 1
      conn:write(("%s (thread %d)\n"):format(line:upper(), id))
    end
  end, {reuseport = true})
  local _, bound = server:address()
  ch:send(bound)                         -- tell the main thread where we listen
  ch:recv()                              -- then serve until it says stop
  server:shutdown()
  return handled
end

local cores = math.max(async.thread.cpu_count(), 2)

-- The first thread picks a free port; the others share it.
local threads = {async.thread.spawn(serve, 1, 0)}
local port = threads[1]:recv()
for id = 2, cores do
  threads[id] = async.thread.spawn(serve, id, port)
  assert(threads[id]:recv() == port)
end
print(("%d threads listening on 127.0.0.1:%d"):format(cores, port))

-- Clients: 64 connections at once, two requests each.
local CLIENTS = 64
local clients = {}
for i = 1, CLIENTS do
  clients[i] = function()
    local conn <close> = net.connect("127.0.0.1", port)
    local seen = {}
    for r = 1, 2 do
      conn:write(("hello %d.%d\n"):format(i, r))
      local reply = conn:read_line()
      assert(reply:match("^HELLO " .. i .. "%." .. r .. " %(thread %d+%)$"), reply)
      seen[r] = tonumber(reply:match("thread (%d+)"))
    end
    assert(seen[1] == seen[2], "one connection stays on one thread")
    return seen[1]
  end
end
local by_thread = {}
for _, id in ipairs(async.gather(clients)) do by_thread[id] = (by_thread[id] or 0) + 1 end

local total, used = 0, 0
for id = 1, cores do
  threads[id]:send("stop")
  local handled = threads[id]:join()
  print(("thread %d: %d connections, %d requests"):format(id, by_thread[id] or 0, handled))
  assert(handled == 2 * (by_thread[id] or 0))
  total = total + handled
  if handled > 0 then used = used + 1 end
end
assert(total == 2 * CLIENTS, "every request was answered once")
assert(used >= 2, "the kernel spread the connections over several threads")
