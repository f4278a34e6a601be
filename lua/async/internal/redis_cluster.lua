-- async.internal.redis_cluster: Redis Cluster for async.redis
-- (redis.connect{cluster = {"host:port", ...}}). The policy on top of the
-- plain client: each master is a plain async.redis client (its shared
-- pipelined connection, pool for blocking commands, pipelines), opened on
-- first use; a command goes to the master of its keys' slot, read from
-- CLUSTER SLOTS; which arguments are keys comes from the server's key
-- specs (async.internal.redis_keys). MOVED refreshes the slot map and
-- retries once at the new owner; ASK sends ASKING and the command to the
-- importing node without touching the map.
local async = require "async"
local class = require "async.class"
local redis = require "async.redis"
local keys = require "async.internal.redis_keys"

local type, error, pcall, select, tostring, tonumber = type, error, pcall, select, tostring, tonumber
local setmetatable, getmetatable, pairs, ipairs = setmetatable, getmetatable, pairs, ipairs
local format, upper, unpack, pack = string.format, string.upper, table.unpack, table.pack
local slot_of, key_slot = keys.slot_of, keys.slot

local RedisError, IOError = redis.RedisError, redis.IOError
local M = {}

local Cluster = {}
local cluster_mt = {__name = "lasync.RedisCluster"}

------------------------------------------------------------- options

-- "redis+cluster://[user:password@]host:port[,host:port...][?k=v&...]":
-- the seeds, and the options every node's connection takes.
local function parse_url(url)
  local auth, hosts, query = url:match("^redis%+cluster://([^@]*@)([^/?]*)/?(%??.*)$")
  if not auth then auth, hosts, query = "", url:match("^redis%+cluster://([^/?]*)/?(%??.*)$") end
  if not hosts or hosts == "" then
    error(format("redis.connect: bad URL %q (redis+cluster://host:port,host:port expected)", url), 4)
  end
  local seeds = {}
  for h in hosts:gmatch("[^,]+") do seeds[#seeds + 1] = h end
  local o = redis.parse_url("redis://" .. auth .. seeds[1] .. query)
  o.host, o.port = nil, nil
  o.cluster = seeds
  return o
end
M.parse_url = parse_url

local function split_addr(s)
  local h, p = s:match("^%[(.+)%]:(%d+)$")
  if not h then h, p = s:match("^([^:]+):(%d+)$") end
  return h, tonumber(p)
end

local function cluster_options(x)
  local o
  if type(x) == "string" then o = parse_url(x)
  else
    o = {}
    for k, v in pairs(x) do o[k] = v end
    if type(x.url) == "string" and x.url:match("^redis%+cluster://") then
      for k, v in pairs(parse_url(x.url)) do if x[k] == nil then o[k] = v end end
      o.url = nil
    end
  end
  local seeds = o.cluster
  if type(seeds) ~= "table" or #seeds == 0 then
    error("redis.connect: option cluster must be a non-empty list of \"host:port\" strings", 3)
  end
  for i, s in ipairs(seeds) do
    if type(s) ~= "string" or not split_addr(s) then
      error(format("redis.connect: cluster[%d] must be a \"host:port\" string (got %s)", i,
                   tostring(s)), 3)
    end
  end
  if o.path or o.url then error("redis.connect: a cluster is reached by host:port seeds, not by path or url", 3) end
  if o.db ~= nil and tonumber(o.db) ~= 0 then
    error("redis.connect: a cluster has only db 0 (option db)", 3)
  end
  o.cluster = nil
  -- A node that went away is reported at once (the slot map may have moved
  -- on), not after a round of reconnect attempts; the next call tries again.
  if o.reconnect_attempts == nil then o.reconnect_attempts = 0 end
  o = redis._options(o)
  return o, seeds
end

------------------------------------------------------------------ nodes

local function closed_error()
  return setmetatable({kind = "IOError", code = "ECLOSED", op = "redis.call",
                       message = "the client was closed"}, IOError)
end

-- An IOError of node addr, saying which node it was.
local function node_error(addr, e)
  if getmetatable(e) ~= IOError then return e end
  local t = {}
  for k, v in pairs(e) do t[k] = v end
  t.node, t.address = addr, addr
  t.message = format("cluster node %s: %s", addr, tostring(e.message))
  return setmetatable(t, IOError)
end

-- The plain client of node addr ("host:port"), connected on first use;
-- concurrent first users wait for the one connect in progress.
local function node(self, addr)
  local n = self._nodes[addr]
  if n then return n end
  if addr == nil then    -- a slot no master serves (the map has a hole)
    self._stale = true
    error(setmetatable({kind = "RedisError", code = "CLUSTERDOWN",
                        message = "CLUSTERDOWN no master serves this hash slot"}, RedisError), 0)
  end
  while self._opening[addr] do self._opening[addr]:wait() end
  n = self._nodes[addr]
  if n then return n end
  if self._closed then error(closed_error(), 0) end
  local ev = async.event()
  self._opening[addr] = ev
  local o = {}
  for k, v in pairs(self.options) do o[k] = v end
  o.host, o.port = split_addr(addr)
  local ok, c = pcall(redis.connect, o)
  self._opening[addr] = nil
  ev:set()
  if not ok then self._stale = true; error(node_error(addr, c), 0) end
  if self._closed then c:close(); error(closed_error(), 0) end
  self._nodes[addr] = c
  return c
end

-- Forgets node addr after it failed: its client is closed, the slot map
-- read again before the next command.
local function drop(self, addr)
  local n = self._nodes[addr]
  self._nodes[addr] = nil
  self._stale = true
  if n then n:close() end
end

-- Reads CLUSTER SLOTS from the first node that answers (known masters,
-- then the seeds). One refresh at a time; others wait for it.
local function load_slots(self, addr)
  local r = node(self, addr):call("CLUSTER", "SLOTS")
  local slots, masters = {}, {}
  local default_host = split_addr(addr)
  for _, range in ipairs(r) do
    local m = range[3]
    local host = m[1]
    if host == "" or host == "?" then host = default_host end
    local a = (host:find(":", 1, true) and ("[" .. host .. "]") or host) .. ":" .. m[2]
    if not masters[a] then masters[a] = true; masters[#masters + 1] = a end
    for s = range[1] + 1, range[2] + 1 do slots[s] = a end
  end
  self._slots, self._masters = slots, masters
end

local function refresh(self)
  local ev = self._refreshing
  if ev then ev:wait(); return end
  ev = async.event()
  self._refreshing = ev
  local tried, seen, last = {}, {}, nil
  local function try(a)
    if seen[a] then return false end
    seen[a] = true
    tried[#tried + 1] = a
    local ok, e = pcall(load_slots, self, a)
    if ok then return true end
    last = e
    if getmetatable(e) ~= IOError then return false end
    drop(self, a)
    return false
  end
  local ok = false
  for _, a in ipairs(self._masters) do if not ok then ok = try(a) end end
  for _, a in ipairs(self.seeds) do if not ok then ok = try(a) end end
  self._refreshing = nil
  if ok then self._stale = false; self.refreshes = self.refreshes + 1 end
  ev:set()
  if ok then return end
  if getmetatable(last) == IOError or last == nil then
    error(setmetatable({kind = "IOError", code = last and last.code or "ENOTCONN",
      op = "redis.connect", message = format("no cluster node answered CLUSTER SLOTS (tried %s)%s",
      table.concat(tried, ", "), last and (": " .. tostring(last.message)) or "")}, IOError), 0)
  end
  error(last, 0)
end

-------------------------------------------------------------- routing

local function redirect(e)
  if getmetatable(e) ~= RedisError then return nil end
  local code = e.code
  if code ~= "MOVED" and code ~= "ASK" then return nil end
  local s, a = e.message:match("(%d+) (%S+)$")
  return code, tonumber(s), a
end

local function any_master(self)
  local m = self._masters
  self._rr = self._rr % #m + 1
  return m[self._rr]
end

-- After op(client, asking, ...) failed with e on node addr: follows a
-- MOVED or ASK (up to three hops: a MOVED, then an ASK), else raises; a
-- lost node raises an IOError naming it, and the slot map is read again
-- before the next command.
local function recover(self, addr, e, hops, op, ...)
  if getmetatable(e) == IOError then
    if not self._closed then drop(self, addr) end
    error(node_error(addr, e), 0)
  end
  local how, s, to = redirect(e)
  if not how or hops == 3 then error(e, 0) end
  if how == "MOVED" then
    self._slots[s + 1] = to              -- at once, for the tasks that call meanwhile
    refresh(self)
  end
  local c = self._nodes[to] or node(self, to)
  local ok, r = pcall(op, c, how == "ASK", ...)   -- every op returns one value
  if ok then return r end
  return recover(self, to, r, hops + 1, op, ...)
end

local function send_at(self, addr, op, ...)
  local c = self._nodes[addr] or node(self, addr)
  local ok, r = pcall(op, c, false, ...)
  if ok then return r end
  return recover(self, addr, r, 1, op, ...)
end

-- Runs op on the master of slot (any master when slot is nil).
local function dispatch(self, slot, op, ...)
  if self._closed then error(closed_error(), 0) end
  if self._stale then refresh(self) end
  if slot then return send_at(self, self._slots[slot + 1], op, ...) end
  -- keyless: any master will do, so a lost one is passed over
  for i = 1, #self._masters do
    local ok, r = pcall(send_at, self, any_master(self), op, ...)
    if ok then return r end
    if getmetatable(r) ~= IOError or i == #self._masters or self._closed then error(r, 0) end
  end
end

local function op_call(c, asking, ...)
  if not asking then return c:call(...) end
  -- ASKING holds for the next command on the same connection only.
  local args = pack(...)
  return c:dedicated(function(d)
    d:call("ASKING")
    return d:call(unpack(args, 1, args.n))
  end)
end

-- The routing info of a command (cached per name): from COMMAND INFO,
-- asked once of any node.
local function info_of(self, cmd)
  local info = self._info[cmd]           -- by the name as given, then in capitals
  if info then return info end
  local name = upper(cmd)
  info = self._info[name]
  if not info then
    local e = dispatch(self, nil, op_call, "COMMAND", "INFO", name)[1]
    -- an unknown command is keyless (the server will say) and not kept
    if not e then return {specs = {}} end
    info = keys.compile(e)
    self._info[name] = info
  end
  self._info[cmd] = info   -- bounded: a name is cached only when the server knows it
  return info
end

local function cross_slot(cmd, k1, k2)
  error(setmetatable({kind = "RedisError", code = "CROSSSLOT",
    message = format("CROSSSLOT %s: keys %q and %q are in different hash slots " ..
                     "(give them one {hash tag})", upper(cmd), tostring(k1), tostring(k2))},
    RedisError), 0)
end

-- The slot of the command cmd(...), or nil when it has no key; raises
-- CROSSSLOT when its keys are in different slots.
local function command_slot(self, cmd, ...)
  if type(cmd) ~= "string" and type(cmd) ~= "number" then
    error(format("bad argument #1 to 'call' (command name expected, got %s)", type(cmd)), 3)
  end
  cmd = tostring(cmd)
  local info = info_of(self, cmd)
  if info.sub then
    local sub = keys.sub_info(info, (...))
    if not sub then return nil end
    info = sub
  end
  local s, k1, k2
  if info.getkeys then
    local ok, ks = pcall(dispatch, self, nil, op_call, "COMMAND", "GETKEYS", cmd, ...)
    if not ok then return nil end         -- no keys, or bad arguments: the server says
    for _, k in ipairs(ks) do
      local ks_ = keys.slot(k)
      if s == nil then s, k1 = ks_, k elseif ks_ ~= s then return cross_slot(cmd, k1, k) end
    end
    return s
  end
  s, k1, k2 = slot_of(info, ...)
  if s == false then return cross_slot(cmd, k1, k2) end
  return s
end

-- cluster:call(cmd, ...): as client:call, on the master of the keys' slot.
function Cluster:call(cmd, ...)
  if type(self) ~= "table" or self._mt ~= cluster_mt then class.bad_self("call", cluster_mt, self) end
  -- the common case in short: a one-key command to a node already open
  -- (the long way costs a command about a third more, under callgrind)
  local info = self._info[cmd]
  if info and info.simple == 1 and not self._stale then
    local k = ...
    if k ~= nil then
      local addr = self._slots[key_slot(k) + 1]
      local c = self._nodes[addr]
      if c then
        local ok, r = pcall(c.call, c, cmd, ...)
        if ok then return r end
        return recover(self, addr, r, 1, op_call, cmd, ...)
      end
    end
  end
  return dispatch(self, command_slot(self, cmd, ...), op_call, cmd, ...)
end

-- Shorthands: cluster:get(k) is cluster:call("GET", k).
local shorthands = {}
cluster_mt.__index = function(_, k)
  local m = Cluster[k] or shorthands[k]
  if m ~= nil or type(k) ~= "string" or not k:match("^%a[%w_]*$") then return m end
  local cmd = upper(k)
  local call = Cluster.call
  m = function(self, ...) return call(self, cmd, ...) end
  shorthands[k] = m
  return m
end

------------------------------------------------- pipelines, transactions

local Batch = {}
local batch_mt = {__index = function(_, k)
  local m = Batch[k]
  if m ~= nil or type(k) ~= "string" then return m end
  local cmd = upper(k)
  return function(self, ...) return self:call(cmd, ...) end
end}
function Batch:call(...)
  if select("#", ...) == 0 then error("bad argument #1 to 'call' (command name expected)", 2) end
  self.cmds[#self.cmds + 1] = pack(...)
  return #self.cmds
end

-- The recorded commands of fn and their one slot (nil: all keyless).
local function record(self, fn, what)
  if type(fn) ~= "function" then
    error(format("bad argument #1 to '%s' (function expected, got %s)", what, type(fn)), 3)
  end
  local b = setmetatable({cmds = {}}, batch_mt)
  fn(b)
  local slot, first
  for i, c in ipairs(b.cmds) do
    local s = command_slot(self, unpack(c, 1, c.n))
    if s ~= nil then
      if slot == nil then slot, first = s, i
      elseif s ~= slot then
        error(setmetatable({kind = "RedisError", code = "CROSSSLOT", message = format(
          "CROSSSLOT a cluster %s runs on one node: commands %d and %d have keys in different " ..
          "hash slots (give them one {hash tag})", what, first, i)}, RedisError), 0)
      end
    end
  end
  return b.cmds, slot
end

local function replay(cmds, asking)
  return function(p)
    for _, c in ipairs(cmds) do
      if asking then p:call("ASKING") end
      p:call(unpack(c, 1, c.n))
    end
  end
end

local function op_pipeline(c, asking, cmds)
  if not asking then return c:pipeline(replay(cmds)) end
  local res = c:dedicated(function(d) return d:pipeline(replay(cmds, true)) end)
  local out = {}
  for i = 2, #res, 2 do out[#out + 1] = res[i] end
  return out
end

-- A pipeline's replies come back in place; MOVED or ASK for its commands
-- (all in one slot) send them on as one, where the slot went.
local function redirected(res)
  for i = 1, #res do
    local how = redirect(res[i])
    if how then return res[i] end
  end
end

function Cluster:pipeline(fn)
  local cmds, slot = record(self, fn, "pipeline")
  if #cmds == 0 then return {} end
  local res = dispatch(self, slot, op_pipeline, cmds)
  local e = redirected(res)
  if not e then return res end
  local todo, at = {}, {}
  for i = 1, #res do
    if redirect(res[i]) then todo[#todo + 1] = cmds[i]; at[#todo] = i end
  end
  local how, s, to = redirect(e)
  if how == "MOVED" then self._slots[s + 1] = to; refresh(self) end
  local c = self._nodes[to] or node(self, to)
  local ok, r2 = pcall(op_pipeline, c, how == "ASK", todo)
  if not ok then r2 = recover(self, to, r2, 2, op_pipeline, todo) end
  for j, i in ipairs(at) do res[i] = r2[j] end
  return res
end

local function moved_in(e)
  if getmetatable(e) ~= RedisError or e.code ~= "EXECABORT" then return nil end
  return e.message:match(": (MOVED) %d+ ") or e.message:match(": (ASK) %d+ ")
end

function Cluster:transaction(fn)
  local cmds, slot = record(self, fn, "transaction")
  local op = function(c) return c:transaction(replay(cmds)) end
  local ok, r = pcall(dispatch, self, slot, op)
  if ok then return r end
  local how = moved_in(r)
  if how == "MOVED" then
    refresh(self)
    return dispatch(self, slot, op)
  elseif how == "ASK" then
    error(setmetatable({kind = "RedisError", code = "TRYAGAIN", message = format(
      "TRYAGAIN the transaction's slot %d is being migrated; nothing was run", slot)},
      RedisError), 0)
  end
  error(r, 0)
end

------------------------------------------------------------ the rest

-- cluster:node(key): the plain client of the master holding key (for
-- WATCH in node:dedicated(fn), SCAN of one node). cluster:nodes(): all
-- masters' clients.
function Cluster:node(key)
  if type(key) ~= "string" and type(key) ~= "number" then
    error(format("bad argument #1 to 'node' (key expected, got %s)", type(key)), 2)
  end
  if self._closed then error(closed_error(), 2) end
  if self._stale then refresh(self) end
  return node(self, self._slots[keys.slot(key) + 1])
end

function Cluster:nodes()
  if self._closed then error(closed_error(), 2) end
  if self._stale then refresh(self) end
  local out = {}
  for i, a in ipairs(self._masters) do out[i] = node(self, a) end
  return out
end

-- Classic pub/sub is broadcast to every node of a cluster: a subscriber
-- on any master hears PUBLISH sent to any other.
function Cluster:subscriber(opts)
  if self._closed then error("subscriber: the client is closed", 2) end
  local o = {}
  for k, v in pairs(self.options) do o[k] = v end
  o.host, o.port = split_addr(self._masters[1])
  if o.reconnect_attempts == 0 then o.reconnect_attempts = 10 end
  local owner = {options = o, _subs = self._subs, _closed = false}
  return require("async.internal.redis_sub").new(owner, opts)
end

function Cluster:dedicated()
  error("redis: dedicated() on a cluster client: use cluster:node(key):dedicated(fn)", 2)
end

function Cluster:close()
  if self._closed then return end
  self._closed = true
  for _, n in pairs(self._nodes) do n:close() end
  self._nodes = {}
  for s in pairs(self._subs) do s:close() end
end
cluster_mt.__close = Cluster.close
cluster_mt.__gc = Cluster.close

function cluster_mt.__tostring(self)
  return format("RedisCluster<%s, %d masters%s>", table.concat(self.seeds, ","),
                #self._masters, self._closed and ", closed" or "")
end

-- redis.connect{cluster = {...}} or "redis+cluster://...": reads the
-- slot map from the first seed that answers.
function M.connect(x)
  local o, seeds = cluster_options(x)
  local list = {}
  for i, s in ipairs(seeds) do list[i] = s end
  local self = setmetatable({_mt = cluster_mt, options = o, seeds = list, _nodes = {},
    _opening = {}, _slots = {}, _masters = {}, _info = {}, _rr = 0, _stale = true,
    _subs = setmetatable({}, {__mode = "k"}), refreshes = 0}, cluster_mt)
  local ok, e = pcall(refresh, self)
  if not ok then self:close(); error(e, 0) end
  return self
end

M.is_cluster = function(x) return getmetatable(x) == cluster_mt end
class.check_self(Cluster, cluster_mt, {call = true})
M.Cluster = Cluster
return M
