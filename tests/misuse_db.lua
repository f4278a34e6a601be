-- tests/misuse_db.lua: the misuse sweep's objects of async.pg (a
-- connection, a pool, a lease, an error) and of async.redis and
-- async.jobs (a client, a cluster client, its raw connection, a subscriber,
-- an error, a job queue), against throwaway servers (tests/pgserver.lua,
-- tests/redissupport.lua) started on first use and stopped by M.stop().
-- Without an installed server the types are swept with wrong self only.
local pgserver = require "pgserver"
local redissupport = require "redissupport"
local M = {}

local srv, rsrv, rcluster               -- the servers, once started

local function server()
  if not srv then srv = assert(pgserver.start()) end
  return srv
end

local function redis_url()
  if not rsrv then rsrv = redissupport.start({skip = function(why) error(why, 0) end}) end
  return rsrv:url()
end

function M.stop()
  if srv then srv:stop() srv = nil end
  if rsrv then redissupport.cleanup(rsrv) rsrv = nil end
  if rcluster then redissupport.cleanup_cluster(rcluster) rcluster = nil end
end

local function add_redis(C, METHODS)
  if not redissupport.find() then return end
  local redis = async.redis
  -- a cluster client (on a one-node cluster: quick to start); its methods
  -- are behind an __index function
  C["lasync.RedisCluster"] = function()
    if not rcluster then rcluster = redissupport.start_cluster({skip = function(why) error(why, 0) end}, 1) end
    local c = redis.connect{cluster = rcluster.seeds}
    return c, function() c:close() end
  end
  METHODS["lasync.RedisCluster"] = {"call", "get", "pipeline", "transaction", "node", "nodes",
                                    "subscriber", "dedicated", "close"}
  local function client() return redis.connect(redis_url()) end
  C["lasync.RedisClient"] = function() return client(), function(c) c:close() end end
  C["lasync.RedisConn"] = function()
    return redis._open_conn(redis._options(redis_url())), function(c) c:close() end
  end
  C["lasync.RedisSubscriber"] = function()
    local c = client()
    local s = c:subscriber()
    return s, function() s:close() c:close() end
  end
  C["lasync.RedisError"] = function()
    local c = client()
    local ok, e = pcall(c.call, c, "NOSUCHCOMMAND")
    c:close()
    assert(not ok)
    return e
  end
  C["lasync.JobQueue"] = function()
    local c = client()
    return async.jobs.queue{redis = c, name = "misuse"}, function() c:close() end
  end
end

function M.add(C, METHODS)
  add_redis(C, METHODS)
  if not pgserver.bindir() then return end
  local pg = async.pg
  local function pool() return pg.pool{conninfo = server().url, max = 2} end
  C["lasync.PgConnection"] = function()
    return pg.connect(server().url, {timeout = 10}), function(c) c:close() end
  end
  C["lasync.PgPool"] = function() return pool(), function(p) p:close() end end
  C["lasync.PgLease"] = function()
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
