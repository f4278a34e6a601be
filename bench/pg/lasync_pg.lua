-- bench/pg/lasync_pg.lua URL WORKLOAD [MODE]: lasync's side of bench/pg/run.
--   queries: 10,000 `select $1::int` from 100 tasks over a pool of 10.
--            MODE "shared" (default): pool:query, statements pipelined on
--            shared connections; "lease": pool:acquire() around each
--            statement (one statement per connection at a time, as asyncpg).
--   rows:    100,000 rows (int, text, float8) in one query, summed.
-- Prints "ok secs=<the timed part>" (connections are opened before).
local async = require "async"
local pg = async.pg
local url, workload, mode = arg[1], arg[2], arg[3] or "shared"

local pool <close> = pg.pool{conninfo = url, max = 10}
do                                        -- open the 10 connections first
  local held = {}
  for i = 1, 10 do held[i] = pool:acquire() end
  for _, l in ipairs(held) do l:release() end
end

if workload == "queries" then
  local jobs = {}
  for k = 1, 100 do
    jobs[k] = mode == "lease" and function()
      local s = 0
      for i = 1, 100 do
        local c <close> = pool:acquire()
        s = s + c:query_value("select $1::int", i)
      end
      return s
    end or function()
      local s = 0
      for i = 1, 100 do s = s + pool:query_value("select $1::int", i) end
      return s
    end
  end
  local t0 = async.time()
  local r = async.gather(jobs)
  local dt = async.time() - t0
  local total = 0
  for k = 1, 100 do total = total + r[k] end
  assert(total == 100 * 5050, total)
  print(("ok secs=%.4f"):format(dt))
elseif workload == "rows" then
  local t0 = async.time()
  local rows = pool:query("select g as id, 'name ' || g as name, g * 1.5::float8 as score from generate_series(1, 100000) g")
  local s = 0
  for i = 1, #rows do s = s + rows[i].id end
  local dt = async.time() - t0
  assert(#rows == 100000 and s == 5000050000 and rows[7].name == "name 7")
  print(("ok secs=%.4f"):format(dt))
else
  error("unknown workload " .. tostring(workload))
end
