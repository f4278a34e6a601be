-- echo_server.lua: a TCP echo server and its clients in one script.
--
--   lasync scripts/echo_server.lua             serve, run 50 clients, check, stop
--   lasync scripts/echo_server.lua serve 7000  only serve, until ^C
--
-- The server runs each connection's handler in a task of its own; the
-- clients run at once, each sending lines and then a binary blob, and
-- check that every byte comes back in order. Then the server shuts down
-- gracefully: it stops accepting and waits for its handlers.
local async = require "async"
local net = async.net

local function echo(conn)
  while true do
    local data = conn:read()             -- what has arrived (up to 64 KiB); nil at the end
    if data == nil then return end       -- the server closes conn when we return
    conn:write(data)                     -- waits if the peer does not keep up
  end
end

if arg[1] == "serve" then
  local srv = net.listen("127.0.0.1", tonumber(arg[2]) or 7000, echo)
  print(("echo server on %s port %d (^C to stop)"):format(srv:address()))
  srv:serve_forever()
  return
end

local CLIENTS, LINES = 50, 20
local srv = net.listen("127.0.0.1", 0, echo)
local host, port = srv:address()
print(("echo server on %s:%d"):format(host, port))

local function blob(seed, size)          -- reproducible bytes, all 256 values
  local t, x = {}, seed
  for i = 1, size do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = string.char(x % 256)
  end
  return table.concat(t)
end

local function client(id)
  local conn <close> = net.connect(host, port, {timeout = 5})
  for i = 1, LINES do
    conn:write(("client %d line %d\n"):format(id, i))
    local back = conn:read_line()
    assert(back == ("client %d line %d"):format(id, i), "line echoed: " .. tostring(back))
  end
  local data = blob(id, 1000 + id * 997)
  conn:write(data)
  conn:shutdown()                        -- half-close: "that was all"
  local back = conn:read_all()           -- the server echoes, then closes
  assert(back == data, ("client %d: %d of %d bytes echoed intact"):format(id, #back, #data))
  return #data
end

local t0 = async.time()
local tasks = {}
for id = 1, CLIENTS do tasks[id] = async.spawn(client, id) end
local sizes = async.gather(tasks)
local total = 0
for i = 1, sizes.n do total = total + sizes[i] end

local cancelled = srv:shutdown(1)        -- stop accepting, wait for the handlers
assert(cancelled == 0 and srv:connections() == 0, "every handler ended by itself")
local ok, err = pcall(net.connect, host, port)
assert(not ok and err.code == "ECONNREFUSED", "the server no longer accepts: " .. tostring(err))

print(("%d clients, %d lines and %d bytes of blobs each way, all echoed in %.0f ms")
      :format(CLIENTS, CLIENTS * LINES, total, (async.time() - t0) * 1000))
print("after shutdown, connecting fails: " .. tostring(err))
