-- host/example/app.lua: the user script the example application runs
-- (build/example/app host/example/app.lua; see docs/embedding.md).
-- `app` is the application's module: app.query(key [, delay]) waits for
-- an answer the application computes from its own state on its own timer.
local async = require "async"

-- Three queries at once: the three tasks wait side by side.
local r = async.gather(
  function() return app.query("temperature") end,
  function() return app.query("humidity") end,
  function() return app.query("status") end)
assert(app.stats().max_inflight == 3, "the queries did not run concurrently")

-- A missing key is an error, raised where the task waits.
local ok, err = pcall(app.query, "pressure")
assert(not ok and tostring(err):find("no key 'pressure'", 1, true), tostring(err))

-- Cancelling a task that waits on the application runs the application's
-- cancel function (it stops its timer), and the task ends cancelled.
local t = async.spawn(app.query, "temperature")
async.sleep(0)                           -- t starts and waits for its answer
t:cancel()
local ok2, cerr = pcall(t.await, t)
assert(not ok2 and async.is_cancelled(cerr))
assert(app.stats().cancelled == 1)

-- A deadline works the same way: the query is cancelled when it expires.
local ok3, terr = pcall(async.wait_for, 0.01, app.query, "status", 3600)
assert(not ok3 and async.is_timeout(terr), tostring(terr))
assert(app.stats().cancelled == 2 and app.stats().inflight == 0)

return {temperature = r[1], humidity = r[2], status = r[3], ticks = app.query("ticks")}
