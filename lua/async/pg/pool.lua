-- async.pg.pool: a pool of PostgreSQL connections (docs/pg.md).
--
-- A semaphore of `max` permits bounds the connections in use; callers
-- beyond it wait in arrival order. A permit holder takes the most recently
-- used idle connection, or opens one when none is idle, so the pool never
-- holds more than `max`: a new connection is opened only when every
-- existing one is in use. A connection given back broken, inside a
-- transaction that cannot be rolled back, or past max_lifetime is closed;
-- the next caller opens a fresh one, which is how the pool recovers from a
-- server restart.
local async = require "async"

return function(pg, Conn, Tx)
  local format, remove, type, error, pcall, setmetatable = string.format, table.remove, type,
    error, pcall, setmetatable

  local Pool = {__name = "lasync.PgPool"}
  Pool.__index = Pool

  local Lease = {__name = "lasync.PgLease"}
  Lease.__index = Lease

  local function lease_conn(l)
    return l._conn or error("pg pool connection already released", 3)
  end
  for _, name in ipairs{"query", "exec", "query_one", "query_value", "prepare", "query_prepared",
                        "exec_prepared", "begin", "notifications", "info", "status", "pending",
                        "copy_in", "copy_out",
                        "next_notification"} do
    Lease[name] = function(l, ...) local c = lease_conn(l); return c[name](c, ...) end
  end

  local function opt_number(opts, k, default)
    local v = opts[k]
    if v == nil then return default end
    if type(v) ~= "number" or v ~= v or v < 0 then
      error(format("pg.pool: %s must be a non-negative number, got %s", k, tostring(v)), 3)
    end
    return v
  end

  -- pg.pool{conninfo=, min=0, max=10, idle_timeout=nil, max_lifetime=nil,
  --         timeout=nil (acquire), connect_timeout=10, query_timeout=nil}
  function pg.pool(opts)
    if type(opts) ~= "table" then error("bad argument #1 to 'pool' (table expected)", 2) end
    if type(opts.conninfo) ~= "string" then error("pg.pool: conninfo (a string) is required", 2) end
    local max = math.tointeger(opt_number(opts, "max", 10))
    if not max or max < 1 then error("pg.pool: max must be a positive integer", 2) end
    local p = setmetatable({
      conninfo = opts.conninfo, max = max, min = math.min(opt_number(opts, "min", 0), max),
      idle_timeout = opt_number(opts, "idle_timeout"), max_lifetime = opt_number(opts, "max_lifetime"),
      timeout = opt_number(opts, "timeout"),
      connect_opts = {timeout = opt_number(opts, "connect_timeout", 10),
                      query_timeout = opt_number(opts, "query_timeout")},
      sem = async.semaphore(max), idle = {}, born = setmetatable({}, {__mode = "k"}),
      size = 0, leased = 0, closed = false, changes = {}, opening = 0,
    }, Pool)
    if p.min > 0 and async.current() then
      p.filler = async.spawn(function()
        local held = {}
        for i = 1, p.min do held[i] = p:acquire() end
        for _, l in ipairs(held) do l:release() end
      end)
    end
    return p
  end

  -- Wakes the permit holders waiting for a connection to appear in the
  -- idle list or for room to open one.
  local function changed(p)
    local w = p.changes
    if #w == 0 then return end
    p.changes = {}
    for _, f in ipairs(w) do if not f:done() then f:resolve() end end
  end

  local function wait_change(p)
    local f = async.future()
    p.changes[#p.changes + 1] = f
    f:await()
  end

  local function close_conn(p, c)
    p.size = p.size - 1
    c:close()
    changed(p)
  end

  -- Opens a connection counted in size (size goes up first, so tasks that
  -- open at once never open more than max between them).
  local function open(p)
    p.size, p.opening = p.size + 1, p.opening + 1
    local ok, c = pcall(pg.connect, p.conninfo, p.connect_opts)
    p.opening = p.opening - 1
    if not ok then
      p.size = p.size - 1
      changed(p)
      error(c, 0)
    end
    p.born[c] = async.time()
    return c
  end

  -- Idle connections past idle_timeout, oldest first, down to min.
  local function prune(p)
    local now, idle = async.time(), p.idle
    while p.idle_timeout and #idle > 0 and p.size > p.min and
          now - idle[1].since >= p.idle_timeout and idle[1].conn:pending() == 0 do
      close_conn(p, remove(idle, 1).conn)
    end
  end

  local function expired(p, c)
    return p.max_lifetime and async.time() - (p.born[c] or 0) >= p.max_lifetime
  end

  -- A usable connection for a permit holder: an idle one, or a new one
  -- while below max, or (shared ones still opening) the next to appear.
  local function take(p)
    while true do
      if p.closed then error("pg pool is closed", 0) end
      prune(p)
      while #p.idle > 0 do
        local c = remove(p.idle).conn
        if c:status() == "ok" and not expired(p, c) then return c end
        close_conn(p, c)
      end
      if p.size < p.max then return open(p) end
      wait_change(p)
    end
  end

  local function acquire(p)
    if p.closed then error("pg pool is closed", 3) end
    p.sem:acquire()
    local ok, c = pcall(take, p)
    if not ok then
      p.sem:release()
      error(c, 0)
    end
    p.leased = p.leased + 1
    return setmetatable({_conn = c, _pool = p}, Lease)
  end

  -- pool:acquire(): a connection of the pool's (`<close>`, or release()),
  -- waiting (at most the pool's timeout) while max are in use.
  function Pool:acquire()
    if self.timeout then return async.timeout(self.timeout, acquire, self) end
    return acquire(self)
  end

  -- Whether c may go back to the idle list; rolls back a transaction left
  -- open (a task that began one by hand and failed).
  local function reusable(p, c)
    if p.closed or c:status() ~= "ok" or expired(p, c) then return false end
    local info = c:info()
    if info.pending == 0 and info.transaction ~= "idle" then
      return (pcall(async.timeout, 5, c.exec, c, "ROLLBACK"))
    end
    return true
  end

  -- lease:release(): gives the connection back (idempotent).
  function Lease:release()
    local c, p = self._conn, self._pool
    if not c then return end
    self._conn = nil
    local ok, keep = pcall(reusable, p, c)
    if ok and keep then
      p.idle[#p.idle + 1] = {conn = c, since = async.time()}
      changed(p)
    else close_conn(p, c) end
    p.leased = p.leased - 1
    p.sem:release()
    if p.leased == 0 and p.drained then p.drained:resolve() end
    prune(p)
  end
  Lease.__close = Lease.release
  Lease.__tostring = function(l) return "PgLease<" .. tostring(l._conn or "released") .. ">" end

  -- An idle connection for a single statement, shared: statements from
  -- many tasks go down one connection's pipeline (each with its own Sync,
  -- so each is its own implicit transaction). Prefers one with nothing in
  -- flight, then opens one while below max, then the least loaded, then
  -- waits for those opening. nil when every connection is leased (the
  -- caller then waits for a permit).
  local function pick_shared(p)
    while true do
      if p.closed then error("pg pool is closed", 3) end
      local idle, best, load = p.idle, nil, math.huge
      for i = #idle, 1, -1 do
        local e = idle[i]
        local c = e.conn
        if c:status() ~= "ok" then
          remove(idle, i)
          close_conn(p, c)
        else
          local n = c:pending()
          if n == 0 then e.since = async.time(); return c end
          if n < load then best, load = e, n end
        end
      end
      if p.size < p.max then
        local c = open(p)
        if p.closed then close_conn(p, c); error("pg pool is closed", 3) end
        idle[#idle + 1] = {conn = c, since = async.time()}
        changed(p)
        return c
      end
      if best then best.since = async.time(); return best.conn end
      if p.opening == 0 then return nil end
      wait_change(p)                 -- connections are opening: use them
    end
  end

  -- pool:query(sql, ...), pool:exec(sql, ...) and the others: one
  -- statement on a shared connection (see pick_shared), or on one taken
  -- for the call when all are leased.
  for _, name in ipairs{"query", "exec", "query_one", "query_value"} do
    local method = Conn[name]
    Pool[name] = function(p, ...)
      local c = pick_shared(p)
      if c then return method(c, ...) end
      local l <close> = p:acquire()
      return l[name](l, ...)
    end
  end

  -- pool:begin([mode]): a transaction on a connection of its own, given
  -- back when the transaction's scope ends.
  function Pool:begin(mode)
    local l = self:acquire()
    local ok, tx = pcall(l.begin, l, mode)
    if not ok then
      l:release()
      error(tx, 0)
    end
    tx.release = function() l:release() end
    return tx
  end

  function Pool:stats()
    return {size = self.size, idle = #self.idle, leased = self.leased, max = self.max}
  end

  -- pool:close([timeout]): no new acquires or statements; closes the idle
  -- connections once their shared statements are done, waits for the leased
  -- ones to come back (each wait at most timeout seconds), closes them.
  function Pool:close(timeout)
    if self.closed then return end
    self.closed = true
    if self.filler then self.filler:cancel() end
    local idle = self.idle
    self.idle = {}
    changed(self)
    for _, e in ipairs(idle) do      -- shared statements still in flight finish first
      if timeout then pcall(async.wait_for, timeout, e.conn.wait_idle, e.conn)
      else pcall(e.conn.wait_idle, e.conn) end
      close_conn(self, e.conn)
    end
    if self.leased > 0 then
      self.drained = async.future()
      if timeout then pcall(async.wait_for, timeout, self.drained)
      else self.drained:await() end
    end
  end
  Pool.__close = Pool.close

  local class = require "async.class"
  class.check_self(Pool)                 -- a wrong self raises at once (a Redis
  class.check_self(Lease)                -- client's close took a lease's _conn)
  pg.Pool, pg.Lease = Pool, Lease
  return pg.pool
end
