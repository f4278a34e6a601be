-- async.internal.redis_sub: pub/sub for async.redis (client:subscriber()). A
-- subscriber has a connection of its own (a subscribed connection takes no
-- other command) and a pump task that reads it: confirmations complete
-- the subscribe/unsubscribe calls waiting for them, in order (Redis
-- answers in order); messages go into a queue that sub:messages() reads.
-- When the connection is lost the pump reconnects with backoff and
-- subscribes again to every channel and pattern.
local core = require "async.core.redis"
local async = require "async"
local redis = require "async.redis"

local type, error, pcall, format, setmetatable = type, error, pcall, string.format, setmetatable

local M = {}
local Sub = {}
local sub_mt = {__index = Sub, __name = "lasync.RedisSubscriber"}

local function keys(set)
  local l = {}
  for k in pairs(set) do l[#l + 1] = k end
  table.sort(l)
  return l
end

local function finish(req)
  if req.fut then req.fut:resolve() end
  for _, f in ipairs(req.futs or {}) do f:resolve() end
  if req.notify then req.notify.queue:put_nowait({kind = "reconnected"}) end
end

-- One reply of the subscribed connection.
local function dispatch(s, m)
  local kind = m[1]
  if kind == "message" then
    s.queue:put_nowait({kind = "message", channel = m[2], data = m[3]})
  elseif kind == "pmessage" then
    s.queue:put_nowait({kind = "pmessage", pattern = m[2], channel = m[3], data = m[4]})
  elseif kind == "subscribe" or kind == "psubscribe" or kind == "unsubscribe"
      or kind == "punsubscribe" then
    local req = s.pending[1]
    if req then
      req.left = req.left - 1
      if req.left <= 0 then
        table.remove(s.pending, 1)
        finish(req)
      end
    end
  end
end

-- Sends (P)SUBSCRIBE for names and queues the request that waits for
-- their confirmations.
local function send(s, cmd, names, req)
  if #names == 0 then return finish(req) end
  req.left = (req.left or 0) + #names
  s.pending[#s.pending + 1] = req
  s.conn:subscribe(cmd, table.unpack(names))
end

-- After a lost connection: a new one, every channel and pattern again.
-- The calls that were waiting for confirmations complete with the new
-- subscription.
local function resubscribe(s)
  local o, delay, last = s.options, s.options.reconnect_delay, nil
  s.conn:close()
  for attempt = 0, o.reconnect_attempts do
    if attempt > 0 then
      async.sleep(delay)
      delay = math.min(delay * 2, o.reconnect_max_delay)
    end
    local ok, c = pcall(redis._open_conn, o)
    if ok then
      s.conn = c
      s.reconnects = s.reconnects + 1
      local futs = {}
      for _, req in ipairs(s.pending) do
        if req.fut then futs[#futs + 1] = req.fut end
        for _, f in ipairs(req.futs or {}) do futs[#futs + 1] = f end
      end
      s.pending = {}
      local ch, pt = keys(s.channels), keys(s.patterns)
      local req = {futs = futs, notify = s.notify and s or nil, left = 0}
      if #ch + #pt == 0 then return finish(req) end
      req.left = #ch + #pt
      s.pending[1] = req
      if #ch > 0 then c:subscribe("SUBSCRIBE", table.unpack(ch)) end
      if #pt > 0 then c:subscribe("PSUBSCRIBE", table.unpack(pt)) end
      return
    end
    last = c
    if async.is_cancelled(c) then break end
  end
  error(last, 0)
end

local function pump(s)
  while not s.closed do
    local ok, m = pcall(s.conn.next_message, s.conn)
    if ok then
      dispatch(s, m)
    elseif s.closed or async.is_cancelled(m) then
      return
    else
      local ok2, err = pcall(resubscribe, s)
      if not ok2 then
        if s.closed or async.is_cancelled(err) then return end
        s.failed = err                  -- readers raise it
        for _, req in ipairs(s.pending) do
          if req.fut then req.fut:reject(err) end
          for _, f in ipairs(req.futs or {}) do f:reject(err) end
        end
        s.pending = {}
        s.queue:close()
        return
      end
    end
  end
end

local function check_names(what, ...)
  local n = select("#", ...)
  for i = 1, n do
    local v = select(i, ...)
    if type(v) ~= "string" then
      error(format("bad argument #%d to '%s' (string expected, got %s)", i, what, type(v)), 3)
    end
  end
  return {...}
end

local function usable(s, what)
  if s.closed then error(format("%s: the subscriber is closed", what), 3) end
  if s.failed then error(s.failed, 0) end
end

-- Sends cmd for the names not yet in set, adds them, waits for Redis to
-- confirm (within connect_timeout).
local function subscribe(s, what, cmd, set, ...)
  local names = check_names(what, ...)
  usable(s, what)
  local new = {}
  for _, n in ipairs(names) do
    if not set[n] then set[n] = true; new[#new + 1] = n end
  end
  if #new == 0 then return end
  local f = async.future()
  if s.conn:status() == "open" then
    send(s, cmd, new, {fut = f})
  else                                  -- the pump's resubscription takes them
    s.pending[#s.pending + 1] = {left = math.huge, futs = {f}}
  end
  f:await()
end

local function unsubscribe(s, what, cmd, set, ...)
  local names = check_names(what, ...)
  usable(s, what)
  if #names == 0 then names = keys(set) end
  local gone = {}
  for _, n in ipairs(names) do
    if set[n] then set[n] = nil; gone[#gone + 1] = n end
  end
  if #gone == 0 or s.conn:status() ~= "open" then return end
  local f = async.future()
  send(s, cmd, gone, {fut = f})
  f:await()
end

function Sub:subscribe(...) return subscribe(self, "subscribe", "SUBSCRIBE", self.channels, ...) end
function Sub:psubscribe(...) return subscribe(self, "psubscribe", "PSUBSCRIBE", self.patterns, ...) end
function Sub:unsubscribe(...) return unsubscribe(self, "unsubscribe", "UNSUBSCRIBE", self.channels, ...) end
function Sub:punsubscribe(...)
  return unsubscribe(self, "punsubscribe", "PUNSUBSCRIBE", self.patterns, ...)
end

-- sub:next([timeout]): the next message ({kind = "message", channel,
-- data} or {kind = "pmessage", pattern, channel, data}, and with
-- notify_reconnect {kind = "reconnected"}); nil once the subscriber is
-- closed; raises async.Timeout, or the error that ended reconnecting.
function Sub:next(timeout)
  local q = self.queue
  if q:empty() then
    if self.failed then error(self.failed, 0) end
    if self.closed then return nil end
  end
  local ok, m
  if timeout then ok, m = pcall(async.timeout, timeout, q.get, q)
  else ok, m = pcall(q.get, q) end
  if ok then return m end
  if self.failed then error(self.failed, 0) end
  if self.closed then return nil end
  error(m, 0)
end

-- for msg in sub:messages([timeout]) do ... end: ends when the subscriber
-- is closed; each wait for a message takes at most timeout seconds.
function Sub:messages(timeout)
  return function() return self:next(timeout) end
end

function Sub:close()
  if self.closed then return end
  self.closed = true
  self.conn:close()
  if self.pump_task and not self.pump_task:done() then self.pump_task:cancel() end
  self.queue:close()
  for _, req in ipairs(self.pending) do
    if req.fut and not req.fut:done() then req.fut:resolve() end
  end
  self.pending = {}
  self.client._subs[self] = nil
end
sub_mt.__close = Sub.close
sub_mt.__gc = function(s)
  if not s.closed and s.conn then s.closed = true; s.conn:close() end
end

function sub_mt.__tostring(s)
  return format("RedisSubscriber<%d channels, %d patterns%s>", #keys(s.channels),
                #keys(s.patterns), s.closed and ", closed" or "")
end

function M.new(client, opts)
  if type(opts) ~= "nil" and type(opts) ~= "table" then
    error(format("bad argument #1 to 'subscriber' (table expected, got %s)", type(opts)), 3)
  end
  if client._closed then error("subscriber: the client is closed", 3) end
  local s = setmetatable({client = client, options = client.options, channels = {}, patterns = {},
                          pending = {}, queue = async.queue(), reconnects = 0,
                          notify = opts and opts.notify_reconnect or nil}, sub_mt)
  s.conn = redis._open_conn(client.options)
  s.pump_task = async.spawn(pump, s)
  client._subs[s] = true
  return s
end

require("async.class").check_self(Sub, sub_mt)  -- a wrong self raises at once
M.Subscriber = Sub
M.IOError = core.IOError
return M
