-- tests/test_wrong_self.lua: the regressions the misuse sweep found once
-- it had live HTTP, WebSocket and TLS objects (tests/misuse_net.lua): Lua
-- functions that, given another type's object, wrote into it.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local redissupport = require "redissupport"
local http, ws = async.http, async.ws

TestWrongSelf = support.suite({}, 20)

-- A Process passed as self to an HTTP server Response method got its
-- `status` method overwritten: it could no longer be waited for or closed,
-- and its child outlived the test.
function TestWrongSelf:test_http_ws_tls_methods_refuse_another_types_object()
  local p = async.process.spawn{"true"}
  local srv <close> = http.serve{handler = function(req, res)
    local ok, err = pcall(getmetatable(res).start, p, 500)
    return 200, tostring(ok) .. " " .. tostring(err)
  end}
  local r = http.get("http://127.0.0.1:" .. select(2, srv:address()) .. "/", {timeout = 10})
  lu.assertStrContains(r.body, "false")
  lu.assertStrContains(r.body, "bad self to 'start' (lasync.HttpResponse expected, got lasync.Process)")
  local classes = {http.Response, http.Session, ws.WebSocket, getmetatable(http.router()),
                   getmetatable(srv)}
  for _, class in ipairs(classes) do
    for k, f in pairs(class) do
      if type(f) == "function" and k ~= "__index" then
        local ok, err = pcall(f, p, 1)
        lu.assertFalse(ok, k)
        lu.assertStrContains(tostring(err), "bad self to '" .. k .. "'")
      end
    end
  end
  lu.assertEquals(type(p.status), "function")
  lu.assertEquals(p:wait(), 0)
  p:close()
end

-- async.class.check_self given an object (not a class) wrapped the
-- functions the object held (a server's handler), breaking it.
function TestWrongSelf:test_check_self_refuses_an_object()
  local class = require "async.class"
  local srv <close> = http.serve{handler = function() return 200, "ok" end}
  local handler = srv.handler
  lu.assertErrorMsgContains("a class table named by __name expected", class.check_self, srv)
  lu.assertErrorMsgContains("a class table named by __name expected", class.check_self, {})
  lu.assertIs(srv.handler, handler)
  local C = {__name = "Test.C", f = function() end}
  class.check_self(C)
  lu.assertErrorMsgContains("Test.C is checked already", class.check_self, C)
end

-- async.testing.suite(obj) replaced obj's metatable: a server lost its
-- close and its tasks leaked.
function TestWrongSelf:test_testing_suite_refuses_an_object()
  local srv <close> = http.serve{handler = function() return 200, "ok" end}
  local mt = getmetatable(srv)
  lu.assertErrorMsgContains("a plain table of tests expected", async.testing.suite, srv)
  lu.assertIs(getmetatable(srv), mt)
end

-- The misuse sweep hung once it had Redis objects: Redis's client close,
-- given a PostgreSQL pool lease as self, closed the lease's connection
-- (both keep it in `_conn`) and the pool's close then waited forever for
-- a lease that could no longer be released. Every database and job queue
-- class, metamethods included, now refuses another type's object.
function TestWrongSelf:test_db_and_job_methods_refuse_another_types_object()
  local rs <close> = redissupport.start(lu)
  local client <close> = async.redis.connect(rs:url())
  local sub <close> = client:subscriber()
  local q = async.jobs.queue{redis = client, name = "wrong-self"}
  local job = q:push("noop", {})
  local w <close> = async.jobs.worker{queue = q, handlers = {noop = function() end}, quiet = true}
  local pool <close> = async.pg.pool{conninfo = "host=/nonexistent"}  -- min 0: connects on use
  local touched = 0
  local probe = setmetatable({}, {__index = function() touched = touched + 1 return function() end end})
  local victim = {_conn = probe, conn = probe, _pool = probe, _idle = {probe}, _busy = {[probe] = true},
                  _subs = {[probe] = true}, queue = probe, pump_task = probe, stopped = probe}
  local tables = {}
  for _, obj in ipairs{client, sub, q, job, w, pool} do
    local mt = getmetatable(obj)
    tables[#tables + 1] = mt
    if type(mt.__index) == "table" then tables[#tables + 1] = mt.__index end
  end
  tables[#tables + 1] = async.pg.Lease
  local n = 0
  for _, t in ipairs(tables) do
    for k, f in pairs(t) do
      if type(f) == "function" and k ~= "__index" then
        local ok, err = pcall(f, victim, 1)
        lu.assertFalse(ok, k)
        lu.assertStrContains(tostring(err), "bad self to '" .. k .. "'")
        n = n + 1
      end
    end
  end
  lu.assertTrue(n > 40, n .. " functions")
  lu.assertEquals(touched, 0)
  lu.assertEquals(job:await(10), nil)    -- what was called with a wrong self still works
  w:stop()
end

support.run(...)
