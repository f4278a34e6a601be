-- pg_queries.lua: the "async database" pattern for real, on PostgreSQL:
-- several queries at once with gather, a pool shared by many tasks, and a
-- transaction that commits or rolls back as its scope ends.
-- asyncpg: asyncio.gather(conn.fetch(...), ...), asyncpg.create_pool(),
-- `async with conn.transaction():`.
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
  if not srv then error("pg_queries: no PostgreSQL server: " .. why, 0) end
  url = srv.url
end

local function main()
  local pool <close> = pg.pool{conninfo = url, max = 5}

  -- Schema and data: statements run one at a time ($1 parameters, never
  -- string interpolation: the names below would break an interpolated query).
  pool:exec("drop table if exists orders, users")
  pool:exec("create table users (id int primary key, name text not null)")
  pool:exec("create table orders (id serial primary key, user_id int references users, total numeric(10,2))")
  for i, name in ipairs{"Ada", "O'Brien", "Robert'); DROP TABLE users; --"} do
    pool:exec("insert into users values ($1, $2)", i, name)
  end
  for i = 1, 6 do pool:exec("insert into orders (user_id, total) values ($1, $2)", i % 3 + 1, i * 10.5) end

  -- One page needs three queries: run them at once. Each task takes a
  -- connection of the pool; the three run in parallel on the server.
  local r = async.gather(
    function() return pool:query_one("select * from users where id = $1", 2) end,
    function() return pool:query("select id, total from orders where user_id = $1 order by id", 2) end,
    function() return pool:query_value("select count(*)::int from users") end)
  local user, orders, nusers = r[1], r[2], r[3]
  print(("user %q has %d orders (of %d users)"):format(user.name, #orders, nusers))
  assert(user.name == "O'Brien" and #orders == 2 and nusers == 3)
  assert(orders[1].total == "10.50", "numeric comes back as an exact string")

  -- Many tasks share the pool: at most 5 connections, the rest wait in turn.
  local jobs = {}
  for i = 1, 50 do
    jobs[i] = function() return pool:query_value("select $1::int * 2", i) end
  end
  local doubled = async.gather(jobs)
  for i = 1, 50 do assert(doubled[i] == i * 2) end
  print(("50 queries from 50 tasks over %d connections"):format(pool:stats().size))
  assert(pool:stats().size <= 5)

  -- A transaction is a `<close>` value: committed explicitly, rolled back
  -- when its scope ends any other way (an error, a cancellation).
  do
    local tx <close> = pool:begin()
    tx:exec("update orders set total = total - 5 where user_id = $1", 2)
    tx:exec("insert into orders (user_id, total) values ($1, $2)", 1, 5)
    tx:commit()
  end
  local ok, err = pcall(function()
    local tx <close> = pool:begin()
    tx:exec("delete from orders")
    tx:exec("insert into orders (user_id, total) values ($1, $2)", 99, 1)  -- no user 99
    tx:commit()
  end)
  print("rolled back: " .. tostring(err))
  assert(not ok and err.sqlstate == "23503")      -- foreign_key_violation
  local n = pool:query_value("select count(*)::int from orders")
  print(("orders after commit and rollback: %d"):format(n))
  assert(n == 7, "the failed transaction left nothing behind")
  pool:exec("drop table orders, users")
  print("pg_queries: ok")
end

local ok, err = pcall(main)
if srv then srv:stop() end
if not ok then error(err, 0) end
