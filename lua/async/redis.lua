-- async.redis: a Redis client on hiredis (host/db/redis.c drives its async
-- context on the loop). This file is the policy: URLs and options, one
-- shared connection that every task's commands are pipelined on,
-- reconnect with backoff, a pool of extra connections for blocking
-- commands and dedicated use, shorthands, pipelines and transactions.
-- Pub/sub is in async.internal.redis_sub (client:subscriber()).
local core = require "async.core.redis"
local async = require "async"
local class = require "async.class"

local type, error, pcall, select, tostring, tonumber = type, error, pcall, select, tostring, tonumber
local setmetatable, getmetatable, rawget = setmetatable, getmetatable, rawget
local format, upper, unpack, pack = string.format, string.upper, table.unpack, table.pack

local M = {RedisError = core.RedisError, IOError = core.IOError}

local function is_redis_error(e) return getmetatable(e) == core.RedisError end
M.is_error = is_redis_error

------------------------------------------------------------- options

local defaults = {
  host = "127.0.0.1", port = 6379, db = 0, connect_timeout = 5,
  reconnect_attempts = 10, reconnect_delay = 0.05, reconnect_max_delay = 2,
  pool_size = 8,
}

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- "redis://[user:password@]host[:port][/db][?k=v&...]" or
-- "unix:///path/to.sock[?db=n&password=...]" into an options table.
local function parse_url(url)
  local o = {}
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if scheme ~= "redis" and scheme ~= "unix" then
    error(format("redis.connect: bad URL %q (redis://host:port/db, unix:///path or " ..
                 "redis+cluster://host:port,... expected)", url), 3)
  end
  local query
  rest, query = rest:match("^([^?]*)%??(.*)$")
  for k, v in query:gmatch("([^&=]+)=([^&]*)") do o[unescape(k)] = unescape(v) end
  if scheme == "unix" then
    o.path = unescape(rest)
  else
    local auth, hostport, db = rest:match("^([^@/]*)@([^/]*)/?(.*)$")
    if not auth then hostport, db = rest:match("^([^/]*)/?(.*)$") end
    if auth then
      local user, pass = auth:match("^([^:]*):(.*)$")
      if user then
        if user ~= "" then o.username = unescape(user) end
        o.password = unescape(pass)
      else
        o.password = unescape(auth)
      end
    end
    local h, p = hostport:match("^%[(.+)%]:?(%d*)$")
    if not h then h, p = hostport:match("^([^:]*):?(%d*)$") end
    if h and h ~= "" then o.host = h end
    if p and p ~= "" then o.port = p end
    if db ~= "" then o.db = db end
  end
  return o
end

local numeric = {port = true, db = true, connect_timeout = true, timeout = true,
  reconnect_attempts = true, reconnect_delay = true, reconnect_max_delay = true, pool_size = true}

local function options(x)
  local o
  if type(x) == "string" then o = parse_url(x)
  elseif x == nil then o = {}
  elseif type(x) == "table" then
    o = {}
    for k, v in pairs(x) do o[k] = v end
    if x.url then
      for k, v in pairs(parse_url(x.url)) do if x[k] == nil then o[k] = v end end
    end
  else
    error(format("bad argument #1 to 'redis.connect' (URL or options table expected, got %s)",
                 type(x)), 3)
  end
  for k, v in pairs(defaults) do if o[k] == nil then o[k] = v end end
  for k in pairs(numeric) do
    if o[k] ~= nil then
      local n = tonumber(o[k])
      if not n or n ~= n or n < 0 then
        error(format("redis.connect: option %s must be a number >= 0 (got %s)", k, tostring(o[k])), 3)
      end
      o[k] = n
    end
  end
  return o
end
M.parse_url = parse_url

----------------------------------------------------------- connections

-- Opens one connection: resolve, connect (within connect_timeout), AUTH,
-- SELECT. Raises the IOError (or the server's RedisError) otherwise.
local function open_conn(o)
  local c
  if o.path then
    c = core.open(o.path)
  else
    local host = o.host
    if not host:match("^[%d.]+$") and not host:find(":") then
      host = async.dns.resolve(host)[1]
    end
    c = core.open(host, o.port)
  end
  local ok, err = pcall(async.timeout, o.connect_timeout, c.ready, c)
  if ok and o.password then
    if o.username then ok, err = pcall(c.call, c, "AUTH", o.username, o.password)
    else ok, err = pcall(c.call, c, "AUTH", o.password) end
  end
  if ok and o.db ~= 0 then ok, err = pcall(c.call, c, "SELECT", o.db) end
  if ok and o.name then ok, err = pcall(c.call, c, "CLIENT", "SETNAME", o.name) end
  if not ok then
    c:close()
    if async.is_timeout(err) then
      err = setmetatable({kind = "IOError", code = "ETIMEDOUT", op = "redis.connect",
                          address = tostring(o.path or (o.host .. ":" .. o.port)),
                          message = format("no connection within %g s", o.connect_timeout)},
                         core.IOError)
    end
    error(err, 0)
  end
  return c
end
M._open_conn = open_conn

-- The commands a shared, pipelined connection must not take: their
-- effect lasts beyond one reply and would leak into other tasks'.
local refused = {
  SUBSCRIBE = "use client:subscriber()", PSUBSCRIBE = "use client:subscriber()",
  UNSUBSCRIBE = "use client:subscriber()", PUNSUBSCRIBE = "use client:subscriber()",
  MONITOR = "not supported", SELECT = "use the db option",
  MULTI = "use client:transaction(fn)", EXEC = "use client:transaction(fn)",
  DISCARD = "use client:transaction(fn)",
  WATCH = "use client:dedicated(fn) for WATCH", UNWATCH = "use client:dedicated(fn) for WATCH",
  QUIT = "use client:close()", RESET = "use client:close()",
}
-- Commands that block the connection until data arrives: sent on a pool
-- connection so the shared one keeps flowing.
local blocking = {BLPOP = true, BRPOP = true, BRPOPLPUSH = true, BLMOVE = true, BLMPOP = true,
  BZPOPMIN = true, BZPOPMAX = true, BZMPOP = true, WAIT = true, WAITAOF = true}

-- kind of a command name: false (plain), "blocking", "stream" (XREAD and
-- XREADGROUP, blocking when they have BLOCK), or the refusal's reason.
local kinds, nkinds = {}, 0
local function classify(cmd)
  local k = kinds[cmd]
  if k ~= nil then return k end
  if type(cmd) ~= "string" and type(cmd) ~= "number" then
    error(format("bad argument #1 to 'call' (command name expected, got %s)", type(cmd)), 3)
  end
  local u = upper(tostring(cmd))
  k = refused[u] or (blocking[u] and "blocking") or
      ((u == "XREAD" or u == "XREADGROUP") and "stream") or false
  if nkinds < 1000 then kinds[cmd] = k; nkinds = nkinds + 1 end   -- bounded
  return k
end

local function has_block(...)
  for i = 1, select("#", ...) do
    local a = select(i, ...)
    if type(a) == "string" and #a == 5 and upper(a) == "BLOCK" then return true end
  end
  return false
end

-------------------------------------------------------------- client

local Client = {}
local client_mt = {__name = "lasync.RedisClient"}

-- Shorthands: client:get(k) is client:call("GET", k); made on first use.
local function shorthand_index(methods)
  return function(_, k)
    local m = methods[k]
    if m ~= nil or type(k) ~= "string" or not k:match("^%a[%w_]*$") then return m end
    local cmd = upper(k)
    m = function(self, ...) return self:call(cmd, ...) end
    methods[k] = m
    return m
  end
end
client_mt.__index = shorthand_index(Client)

local function closed_error(op)
  return setmetatable({kind = "IOError", code = "ECLOSED", op = op,
                       message = "the client was closed"}, core.IOError)
end

-- The shared connection, reconnecting (with backoff) when it was lost.
-- Concurrent callers wait for the one reconnect in progress.
local function reconnect(self)
  if self._closed then error(closed_error("redis.call"), 2) end
  local ev = self._reconnecting
  if ev then
    ev:wait()
    if self._conn then return self._conn end
    error(self._reconnect_err or closed_error("redis.call"), 0)
  end
  ev = async.event()
  self._reconnecting = ev
  if self._conn then self._conn:close() end
  self._conn = nil
  local o, delay, err = self.options, self.options.reconnect_delay, nil
  for attempt = 0, o.reconnect_attempts do
    if attempt > 0 then
      local ok, e = pcall(async.sleep, delay)
      if not ok then err = e; break end
      delay = math.min(delay * 2, o.reconnect_max_delay)
    end
    local ok, c = pcall(open_conn, o)
    if ok then
      if self._closed then c:close() else self._conn = c end
      err = nil
      break
    end
    err = c
    if async.is_cancelled(c) then break end
    if self._closed then break end
  end
  self._reconnecting = nil
  self._reconnect_err = err
  if self._conn then self.reconnects = self.reconnects + 1 end
  ev:set()
  if err then error(err, 0) end
  return self._conn
end

local function shared(self)
  local c = self._conn
  if c and c:status() == "open" then return c end
  return reconnect(self)
end

-- A pool connection for fn(conn, ...): returned to the pool afterwards
-- unless fn failed for another reason than a server error reply (then the
-- connection may still owe a reply, or be broken, and is closed).
local function with_pooled(self, fn, ...)
  if self._closed then error(closed_error("redis.call"), 3) end
  local _ <close> = self._pool_sem:acquire()
  local idle = self._idle
  local c = idle[#idle]
  idle[#idle] = nil
  if c and c:status() ~= "open" then c:close(); c = nil end
  if not c then c = open_conn(self.options) end
  self._busy[c] = true
  local res = pack(pcall(fn, c, ...))
  self._busy[c] = nil
  if (res[1] or is_redis_error(res[2])) and not self._closed and c:status() == "open" then
    idle[#idle + 1] = c
  else
    c:close()
  end
  if res[1] then return unpack(res, 2, res.n) end
  error(res[2], 0)
end

local function call_on(c, ...) return c:call(...) end

-- A command the user declared idempotent (option `idempotent`) is sent
-- once more, on a new connection, when the connection was lost with it in
-- flight; any other command fails with that loss.
local function is_lost(e)
  return getmetatable(e) == core.IOError and e.op == "redis.call" and
         (e.code == "EOF" or e.code == "ECONNRESET")
end

local function send(c, t, cmd, ...)
  if t then return async.timeout(t, c.call, c, cmd, ...) end
  return c:call(cmd, ...)
end

local function call_idempotent(self, c, t, cmd, ...)
  for _ = 1, self.options.reconnect_attempts do
    local ok, r = pcall(send, c, t, cmd, ...)
    if ok then return r end
    if not is_lost(r) then error(r, 0) end
    c = reconnect(self)                 -- a server that dies may reset the next one too
  end
  return send(c, t, cmd, ...)
end

-- client:call(cmd, ...): the reply of one command (see docs/API.md for
-- the conversions); raises RedisError for an error reply, IOError when
-- the connection is lost with the command in flight.
function Client:call(cmd, ...)
  -- checks self by a field, not getmetatable: a C call costs a command 3%
  if self._mt ~= client_mt then class.bad_self("call", client_mt, self) end
  local k = kinds[cmd]
  if k == nil then k = classify(cmd) end
  if k then
    if k == "blocking" or (k == "stream" and has_block(...)) then
      return with_pooled(self, call_on, cmd, ...)
    elseif k ~= "stream" then
      error(format("redis: %s is not allowed on a shared client (%s)", upper(cmd), k), 2)
    end
  end
  local c = self._conn
  if not c or c:status() ~= "open" then c = reconnect(self) end
  local t = self.options.timeout
  if self._idempotent and self._idempotent[upper(cmd)] then
    return call_idempotent(self, c, t, cmd, ...)
  end
  if t then return async.timeout(t, c.call, c, cmd, ...) end
  return c:call(cmd, ...)
end

-- A recorder of commands for pipeline and transaction: p:call(...) and
-- p:<shorthand>(...) append; nothing is sent until fn returns.
local Batch = {}
local batch_mt = {__index = shorthand_index(Batch)}
function Batch:call(...)
  local n = select("#", ...)
  if n == 0 then error("bad argument #1 to 'call' (command name expected)", 2) end
  local cmd = {...}
  local k = classify(cmd[1])
  if k and k ~= "stream" and (k ~= "blocking" or not self._dedicated) then
    error(format("redis: %s is not allowed in a pipeline (%s)", upper(cmd[1]),
                 k == "blocking" and "blocking" or k), 2)
  end
  self.cmds[#self.cmds + 1] = cmd
  return #self.cmds
end

local function record(fn, dedicated)
  if type(fn) ~= "function" then
    error(format("bad argument #1 (function expected, got %s)", type(fn)), 3)
  end
  local b = setmetatable({cmds = {}, _dedicated = dedicated}, batch_mt)
  fn(b)
  return b.cmds
end

local function run_pipeline(self, c, cmds)
  local t = self.options.timeout
  if t then return async.timeout(t, c.pipeline, c, cmds) end
  return c:pipeline(cmds)
end

-- MULTI, the commands, EXEC, in one write: atomic, and no other task's
-- command can come in between. Returns EXEC's list (error replies of
-- single commands in place), or nil when a WATCHed key changed.
local function run_transaction(self, c, cmds)
  local all = {{"MULTI"}}
  for i = 1, #cmds do all[i + 1] = cmds[i] end
  all[#all + 1] = {"EXEC"}
  local res = run_pipeline(self, c, all)
  local exec = res[#all]
  if is_redis_error(exec) then
    for i = 2, #all - 1 do          -- EXECABORT: say which command was refused
      if is_redis_error(res[i]) then
        exec.message = exec.message .. " (command " .. (i - 1) .. ": " .. res[i].message .. ")"
        break
      end
    end
    error(exec, 2)
  end
  return exec or nil
end

function Client:pipeline(fn)
  local cmds = record(fn)
  if #cmds == 0 then return {} end
  return run_pipeline(self, shared(self), cmds)
end

function Client:transaction(fn)
  local cmds = record(fn)
  return run_transaction(self, shared(self), cmds)
end

-- A connection of the pool for one task's exclusive use: WATCH,
-- blocking commands, long MULTI blocks.
local Dedicated = {}
local dedicated_mt = {__index = shorthand_index(Dedicated)}
function Dedicated:call(cmd, ...)
  local k = classify(cmd)
  if k and k:find("subscriber", 1, true) or k == "not supported" then
    error(format("redis: %s is not allowed on a dedicated connection (%s)", upper(cmd), k), 2)
  end
  if k and upper(cmd) == "WATCH" then self._watching = true end
  return self._c:call(cmd, ...)
end
function Dedicated:pipeline(fn) return run_pipeline(self._client, self._c, record(fn, true)) end
function Dedicated:transaction(fn) return run_transaction(self._client, self._c, record(fn, true)) end

function Client:dedicated(fn, ...)
  if type(fn) ~= "function" then
    error(format("bad argument #1 to 'dedicated' (function expected, got %s)", type(fn)), 2)
  end
  return with_pooled(self, function(c, ...)
    local d = setmetatable({_c = c, _client = self}, dedicated_mt)
    local res = pack(pcall(fn, d, ...))
    if not res[1] or rawget(d, "_watching") then pcall(c.call, c, "UNWATCH") end
    if res[1] then return unpack(res, 2, res.n) end
    error(res[2], 0)
  end, ...)
end

function Client:subscriber(opts)
  return require("async.internal.redis_sub").new(self, opts)
end

-- Closes the shared and pooled connections: commands in flight fail with
-- ECLOSED. Idempotent.
function Client:close()
  if self._closed then return end
  self._closed = true
  if self._conn then self._conn:close() end
  self._conn = nil
  for _, c in ipairs(self._idle) do c:close() end
  self._idle = {}
  for c in pairs(self._busy) do c:close() end
  for s in pairs(self._subs) do s:close() end
end
client_mt.__close = Client.close
client_mt.__gc = Client.close

function client_mt.__tostring(self)
  local o = self.options
  return format("RedisClient<%s%s>", o.path or (o.host .. ":" .. o.port),
                self._closed and ", closed" or "")
end

-- async.redis.connect(url_or_opts): connects the shared connection (one
-- attempt within connect_timeout) and returns the client.
local function idempotent_set(list)
  if list == nil then return nil end
  if type(list) ~= "table" then
    error("redis.connect: option idempotent must be a list of command names", 3)
  end
  local set = {}
  for _, name in ipairs(list) do
    if type(name) ~= "string" then
      error("redis.connect: option idempotent must be a list of command names", 3)
    end
    set[upper(name)] = true
  end
  return set
end

function M.connect(x)
  if (type(x) == "table" and (x.cluster ~= nil or (type(x.url) == "string" and x.url:match("^redis%+cluster://"))))
     or (type(x) == "string" and x:match("^redis%+cluster://")) then
    return require("async.internal.redis_cluster").connect(x)
  end
  local o = options(x)
  local idem = idempotent_set(o.idempotent)
  local c = open_conn(o)
  return setmetatable({_mt = client_mt, options = o, _conn = c, _idle = {},
                       _busy = setmetatable({}, {__mode = "k"}),
                       _subs = setmetatable({}, {__mode = "k"}),
                       _pool_sem = async.semaphore(math.max(1, math.floor(o.pool_size))),
                       _idempotent = idem, reconnects = 0}, client_mt)
end

class.check_self(Client, client_mt, {call = true})  -- a wrong self raises at once
M.Client = Client
M.stats = core.stats
M._options = options

return M
