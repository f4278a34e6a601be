-- bench/lasync/ws_load.lua PORT [CLIENTS [SENDERS [MESSAGES]]]: the load for
-- bench/ws_run.py. CLIENTS WebSockets connect; SENDERS of them each send
-- MESSAGES messages, one at a time, the next once its own came back; every
-- client counts what it receives. Prints "ok delivered=N t=seconds".
local port = tonumber(arg[1])
local CLIENTS, SENDERS, MESSAGES = tonumber(arg[2] or 100), tonumber(arg[3] or 10), tonumber(arg[4] or 200)
local url = "ws://127.0.0.1:" .. port .. "/"
local clients = {}
for i = 1, CLIENTS do clients[i] = async.ws.connect(url) end
async.sleep(0.2)                                   -- all registered on the server
local total, delivered, done = CLIENTS * SENDERS * MESSAGES, 0, async.future()
local own = {}
local t0 = async.time()
for i = 1, CLIENTS do
  async.spawn(function()
    local w = clients[i]
    for msg in w:messages() do
      delivered = delivered + 1
      if own[i] and msg:sub(1, #own[i]) == own[i] then own[i] = nil; w.turn:set() end
      if delivered == total then done:resolve() end
    end
  end)
end
for i = 1, SENDERS do
  local w = clients[i]
  w.turn = async.event()
  async.spawn(function()
    for m = 1, MESSAGES do
      own[i] = ("s%d:%d "):format(i, m)
      w.turn:clear()
      w:send(own[i] .. ("x"):rep(40))
      w.turn:wait()
    end
  end)
end
async.wait_for(120, done)
print(("ok delivered=%d t=%.3f"):format(delivered, async.time() - t0))
os.exit(0)
