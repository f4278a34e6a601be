-- pg_listen_worker.lua: a worker woken by PostgreSQL's LISTEN/NOTIFY.
-- Producers insert jobs and NOTIFY in the same transaction (the
-- notification is delivered only if the job was committed); the worker
-- waits in `for n in conn:notifications("jobs")` without polling, takes
-- jobs with SELECT ... FOR UPDATE SKIP LOCKED, and stops on "stop".
--
-- Uses the server in PG_URL if set; otherwise starts a throwaway one in a
-- temporary directory (tests/pgserver.lua, as the tests do) and stops it.
package.path = "tests/?.lua;" .. package.path
local async = require "async"
local pg = async.pg

local srv, url = nil, os.getenv("PG_URL")
if not url then
  local why
  srv, why = require("pgserver").start()
  if not srv then error("pg_listen_worker: no PostgreSQL server: " .. why, 0) end
  url = srv.url
end

local function worker(done)
  local listen <close> = pg.connect(url)     -- a connection for notifications only
  local work <close> = pg.connect(url)
  local handled = 0
  -- notifications() has sent LISTEN when it returns; its fourth value
  -- UNLISTENs when closed (the generic for closes it when the loop ends).
  local next_note, s, c, unlisten = listen:notifications("jobs")
  done.listening:set()                       -- now producers may notify
  for n in next_note, s, c, unlisten do
    if n.payload == "stop" then break end
    -- Take every pending job (a notification may stand for several).
    while true do
      local tx <close> = work:begin()
      local job = tx:query_one("select id, payload from jobs where done = false order by id limit 1 for update skip locked")
      if not job then break end
      tx:exec("update jobs set done = true, result = upper($1) where id = $2", job.payload, job.id)
      tx:commit()
      handled = handled + 1
    end
  end
  return handled
end

local function main()
  local pool <close> = pg.pool{conninfo = url, max = 3}
  pool:exec("drop table if exists jobs")
  pool:exec("create table jobs (id serial primary key, payload text, done bool default false, result text)")
  local done = {listening = async.event()}
  local w = async.spawn(worker, done)
  done.listening:wait()

  local producers = {}
  for p = 1, 3 do
    producers[p] = function()
      for i = 1, 4 do
        local tx <close> = pool:begin()
        tx:exec("insert into jobs (payload) values ($1)", ("job %d.%d"):format(p, i))
        tx:exec("select pg_notify('jobs', 'new')")
        tx:commit()
      end
    end
  end
  async.gather(producers)
  -- The stop notification comes after every job's (notifications arrive
  -- in commit order) and each job's makes the worker drain the table.
  pool:exec("select pg_notify('jobs', 'stop')")
  local handled = async.wait_for(10, w)
  local left = pool:query_value("select count(*)::int from jobs where not done")
  local right = pool:query_value("select count(*)::int from jobs where result = upper(payload)")
  print(("worker handled %d jobs, %d left, %d results right"):format(handled, left, right))
  assert(handled == 12 and left == 0 and right == 12)
  pool:exec("drop table jobs")
  print("pg_listen_worker: ok")
end

local ok, err = pcall(main)
if srv then srv:stop() end
if not ok then error(err, 0) end
