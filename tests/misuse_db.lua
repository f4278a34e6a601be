-- tests/misuse_db.lua: the misuse sweep's objects of async.pg (a
-- connection, a pool, a lease, an error), against a throwaway server
-- (tests/pgserver.lua) started on first use and stopped by M.stop().
-- Without an installed server the types are swept with wrong self only.
local pgserver = require "pgserver"
local M = {}

local srv                                -- the server, once started

local function server()
  if not srv then srv = assert(pgserver.start()) end
  return srv
end

function M.stop()
  if srv then srv:stop() srv = nil end
end

function M.add(C)
  if not pgserver.bindir() then return end
  local pg = async.pg
  local function pool() return pg.pool{conninfo = server().url, max = 2} end
  C["lasync.PgConnection"] = function()
    return pg.connect(server().url, {timeout = 10}), function(c) c:close() end
  end
  C["async.pg.Pool"] = function() return pool(), function(p) p:close() end end
  C["async.pg.Lease"] = function()
    local p = pool()
    local l = async.timeout(10, p.acquire, p)
    return l, function() pcall(l.release, l) p:close() end
  end
  C["lasync.PgError"] = function()
    local c = pg.connect(server().url, {timeout = 10})
    local ok, e = pcall(c.query, c, "select nonsense")
    c:close()
    assert(not ok)
    return e
  end
end

return M
