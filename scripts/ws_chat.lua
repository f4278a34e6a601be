-- ws_chat.lua: the WebSocket chat server (every message goes to everyone)
-- and its clients, in one script.
--
--   lasync scripts/ws_chat.lua                 serve, run 20 clients, check, stop
--   lasync scripts/ws_chat.lua serve 8080      only serve, until ^C
--   lasync scripts/ws_chat.lua client ws://127.0.0.1:8080/chat name
--                                              a client: lines from stdin go out,
--                                              messages are printed
--
-- Each connection is registered in the room by a to-be-closed value, so it
-- is unregistered however its handler ends (the peer closed, an error, the
-- server cancelled it at shutdown). Each member has a bounded outbox and a
-- writer task: a slow client cannot stall the broadcast, and one that falls
-- 64 messages behind is dropped, so the server never buffers without bound.
local async = require "async"
local http, ws = async.http, async.ws

local Room = {}
Room.__index = Room

local function new_room() return setmetatable({members = {}, count = 0, dropped = 0}, Room) end

-- room:register(w): a member; `local m <close> = room:register(w)`.
function Room:register(w)
  local m = {ws = w, outbox = async.queue(64)}
  m.writer = async.spawn(function()
    for msg in m.outbox:iter() do
      if not pcall(w.send, w, msg) then break end
    end
  end)
  self.members[m] = true
  self.count = self.count + 1
  return setmetatable(m, {__close = function()
    if self.members[m] then
      self.members[m] = nil
      self.count = self.count - 1
    end
    m.outbox:close()
    pcall(m.writer.await, m.writer)       -- what was queued goes out first
  end})
end

function Room:broadcast(msg)
  for m in pairs(self.members) do
    if m.outbox:full() then                -- too slow: drop it
      self.members[m] = nil
      self.count = self.count - 1
      self.dropped = self.dropped + 1
      m.ws:abort()
    else
      m.outbox:put_nowait(msg)
    end
  end
end

local function chat_app(room)
  local r = http.router()
  r:get("/chat", function(req)
    local w <close> = ws.upgrade(req, {ping_interval = 20})
    local name = req.query.name or "anonymous"
    local _ <close> = room:register(w)
    room:broadcast(name .. " joined")
    for msg in w:messages() do room:broadcast(name .. ": " .. msg) end
    room:broadcast(name .. " left")
  end)
  r:get("/", function() return 200, "chat: connect a WebSocket to /chat?name=you\n" end)
  return r
end

if arg[1] == "serve" then
  local srv = http.serve{host = "127.0.0.1", port = tonumber(arg[2]) or 8080, handler = chat_app(new_room())}
  print(("chat on ws://%s:%d/chat (^C to stop)"):format(srv:address()))
  srv.net:serve_forever()
  return
elseif arg[1] == "client" then
  local w <close> = ws.connect((arg[2] or "ws://127.0.0.1:8080/chat") .. "?name=" .. (arg[3] or "me"))
  async.spawn(function() for msg in w:messages() do print(msg) end end)
  for line in async.stdin:lines() do w:send(line) end
  return
end

-- The demo: 20 clients; each says 3 things once all have joined, and
-- reads until it has seen all 60 messages, then leaves.
local CLIENTS, SAYS = 20, 3
local room = new_room()
local srv <close> = http.serve{handler = chat_app(room)}
local url = ("ws://127.0.0.1:%d/chat"):format(select(2, srv:address()))
print("chat on " .. url)

local all_joined = async.event()
local function client(i)
  local w <close> = ws.connect(url .. "?name=c" .. i)
  local seen, said = 0, 0
  for msg in w:messages() do
    if msg == "c" .. CLIENTS .. " joined" then all_joined:set() end
    if msg:find("^c%d+: ") then seen = seen + 1 end
    if all_joined:is_set() and said == 0 then
      for k = 1, SAYS do w:send(("hello %d from %d"):format(k, i)) end
      said = SAYS
    end
    if seen == CLIENTS * SAYS then break end
  end
  return seen
end

local tasks = {}
for i = 1, CLIENTS do
  tasks[i] = async.spawn(client, i)
  while room.count < i do async.sleep(0.001) end   -- join in order: c20 is the last
end
local seen = async.gather(tasks)
for i = 1, CLIENTS do
  assert(seen[i] == CLIENTS * SAYS, ("client %d saw %d messages"):format(i, seen[i]))
end
while room.count > 0 do async.sleep(0.001) end
print(("%d clients each received all %d messages; the room is empty again"):format(CLIENTS, CLIENTS * SAYS))
