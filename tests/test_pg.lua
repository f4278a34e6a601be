-- tests/test_pg.lua: async.pg against a real PostgreSQL server the file
-- starts (tests/pgserver.lua): every type both ways with NULL and edge
-- values, parameters that would be injection if interpolated, many tasks'
-- statements in one pipeline, errors, cancellation and timeouts of a
-- running statement, misuse, and no descriptor or handle left behind.
-- Without a server binary every test is reported skipped, with the reason.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local io_ = require "iosupport"
local pgserver = require "pgserver"
local pg = async.pg

local srv, why = pgserver.start()

local function connect(opts) return pg.connect(srv.url, opts) end

-- Runs fn(conn) on a fresh connection, closed after.
local function with_conn(fn)
  local c <close> = connect()
  return fn(c)
end

local function value(c, sql, ...) return c:query_value(sql, ...) end

-- What needs no server: it runs (and counts) even where none is installed.
TestPgOffline = support.suite({}, 20)

function TestPgOffline:test_refused_connection_is_an_ioerror()
  local l = require("async.core.net").tcp_listen("127.0.0.1", 0)
  local _, port = l:address()
  l:close()
  local ok, e = pcall(pg.connect, ("host=127.0.0.1 port=%d password=zz-secret-zz"):format(port))
  lu.assertFalse(ok)
  lu.assertEquals(e.kind, "IOError")
  lu.assertEquals(e.code, "ECONNREFUSED")
  lu.assertNotStrContains(tostring(e), "zz-secret-zz")
end

function TestPgOffline:test_argument_errors()
  lu.assertErrorMsgContains("string expected", pg.connect, nil)
  lu.assertErrorMsgContains("table expected", pg.connect, "x", 5)
  lu.assertErrorMsgContains("timeout", pg.connect, "x", {timeout = -1})
  lu.assertErrorMsgContains("string expected", pg.bytea, 5)
  lu.assertErrorMsgContains("conninfo", pg.pool, {})
  lu.assertErrorMsgContains("max", pg.pool, {conninfo = "x", max = 0})
  lu.assertErrorMsgContains("idle_timeout", pg.pool, {conninfo = "x", idle_timeout = "no"})
  lu.assertErrorMsgContains("table expected", pg.pool, "x")
  local conn_methods = pg.Connection
  lu.assertErrorMsgContains("PgConnection expected", conn_methods.query, {}, "select 1")
  lu.assertErrorMsgContains("PgConnection expected", conn_methods.close, 5)
  lu.assertFalse(pg.is_error({}))
  lu.assertFalse(pg.is_error("x"))
end

TestPgTypes = support.suite({}, 20)

function TestPgTypes:setUp() if not srv then lu.skip(why) end end

function TestPgTypes:test_integers_both_ways_with_edges()
  with_conn(function(c)
    for _, case in ipairs{{"int2", -32768}, {"int2", 32767}, {"int4", -2147483648},
                          {"int4", 2147483647}, {"int8", math.mininteger},
                          {"int8", math.maxinteger}, {"int8", 0}, {"oid", 4294967295}} do
      local v = value(c, "select $1::" .. case[1], case[2])
      lu.assertEquals(math.type(v), "integer", case[1])
      lu.assertEquals(v, case[2], case[1])
    end
    local e = select(2, pcall(value, c, "select $1::int2", 32768))
    lu.assertTrue(pg.is_error(e))
    lu.assertEquals(e.sqlstate, "22003")          -- out of range for smallint
  end)
end

function TestPgTypes:test_floats_keep_every_bit()
  with_conn(function(c)
    for _, x in ipairs{0.1, 1 / 3, 1e308, -2.5e-308, 4.9e-324, 123456789.123456789, -0.5} do
      lu.assertEquals(value(c, "select $1::float8", x), x)
    end
    lu.assertEquals(value(c, "select $1::float8", math.huge), math.huge)
    lu.assertEquals(value(c, "select $1::float8", -math.huge), -math.huge)
    local nan = value(c, "select $1::float8", 0 / 0)
    lu.assertTrue(nan ~= nan)
    lu.assertEquals(value(c, "select 1.5::float4"), 1.5)
    -- Every float read back equals what strtod (tonumber) makes of its text.
    local rows = c:query([[select f, f::text as t from (
      select (random() * 10 ^ (g % 30 - 12))::float8 * (case when g % 2 = 0 then 1 else -1 end) as f
      from generate_series(1, 2000) g
      union all select unnest('{0, -0, 123456.789, 999999999999999, 0.000001, 1e-7, 12345678901234567890}'::float8[])) s]])
    for _, r in ipairs(rows) do lu.assertEquals(r.f, tonumber(r.t), r.t) end
    for _, r in ipairs(c:query("select g::int8 * 7919 * (case when g % 2 = 0 then 1 else -1 end) as i, (g::int8 * 7919)::text as t from generate_series(1, 2000) g")) do
      lu.assertEquals(math.abs(r.i), math.tointeger(r.t))
    end
    lu.assertEquals(math.type(value(c, "select 2::float8")), "float")
  end)
end

function TestPgTypes:test_numeric_is_a_string_without_loss()
  with_conn(function(c)
    local big = "123456789012345678901234567890.123456789012345678901"
    lu.assertEquals(value(c, "select $1::numeric", big), big)
    lu.assertEquals(value(c, "select $1::numeric", "-0.000000000000000000001"), "-0.000000000000000000001")
    lu.assertEquals(value(c, "select 'NaN'::numeric"), "NaN")
    lu.assertEquals(value(c, "select $1::numeric", 12), "12")
  end)
end

function TestPgTypes:test_bool_text_and_null()
  with_conn(function(c)
    lu.assertIs(value(c, "select $1::bool", true), true)
    lu.assertIs(value(c, "select $1::bool", false), false)
    for _, s in ipairs{"", "plain", "ünïcødé ✓", "it's \"quoted\" \\ back\\slash", ("x"):rep(100000),
                       "line\nbreak\ttab"} do
      lu.assertEquals(value(c, "select $1::text", s), s)
      lu.assertEquals(value(c, "select $1::varchar", s), s)
    end
    lu.assertIs(value(c, "select $1::int", nil), pg.null)
    lu.assertIs(value(c, "select $1::text", pg.null), pg.null)
    lu.assertIs(value(c, "select $1::int is null", nil), true)
    lu.assertIs(value(c, "select null::bytea"), pg.null)
    lu.assertEquals(tostring(pg.null), "pg.null")
    -- trailing nils count as parameters
    lu.assertEquals(c:query("select $1::int as a, $2::int as b", 1, nil)[1].b, pg.null)
  end)
end

function TestPgTypes:test_bytea_every_byte()
  with_conn(function(c)
    local t = {}
    for i = 0, 255 do t[#t + 1] = string.char(i) end
    local all = table.concat(t)
    lu.assertEquals(value(c, "select $1::bytea", pg.bytea(all)), all)
    lu.assertEquals(value(c, "select $1::bytea", pg.bytea("")), "")
    lu.assertEquals(value(c, "select length($1::bytea)", pg.bytea(all)), 256)
    lu.assertEquals(value(c, "select '\\x00ff'::bytea"), "\0\255")
    local ok, e = pcall(value, c, "select $1::text", "a\0b")
    lu.assertFalse(ok)
    lu.assertStrContains(tostring(e), "pg.bytea")
  end)
end

function TestPgTypes:test_json_and_jsonb()
  with_conn(function(c)
    local v = value(c, [[select '{"a": [1, 2, {"b": null}], "s": "x"}'::jsonb]])
    if pg.config.json_decode then
      lu.assertEquals(v.a[2], 2)
      lu.assertEquals(v.s, "x")
      lu.assertEquals(value(c, "select ($1::jsonb)->>'k'", {k = "v"}), "v")
      lu.assertEquals(value(c, "select ($1::json)->>1", pg.json({"p", "q"})), "q")
      local json = async.json
      lu.assertIs(value(c, "select $1::jsonb", json.null), pg.null)          -- NULL
      lu.assertEquals(value(c, "select $1::jsonb", json.array{1, 2})[2], 2)   -- JSON, not an array
      lu.assertEquals(value(c, "select $1::jsonb->'b'", {b = json.null}), json.null)
      local round = value(c, "select $1::jsonb", v)                          -- decoded, sent back
      lu.assertEquals(round.a[3].b, json.null)
    else
      lu.assertEquals(type(v), "string")
      lu.assertStrContains(v, '"s": "x"')
      lu.assertEquals(value(c, "select ($1::jsonb)->>'k'", '{"k": "v"}'), "v")
    end
  end)
end

function TestPgTypes:test_timestamps_dates_and_others_are_text()
  with_conn(function(c)
    c:exec("set timezone = 'UTC'")
    lu.assertEquals(value(c, "select $1::timestamp", "2024-02-29 23:59:59.123456"),
                    "2024-02-29 23:59:59.123456")
    lu.assertEquals(value(c, "select $1::timestamptz", "2024-01-02 03:04:05+02"),
                    "2024-01-02 01:04:05+00")
    lu.assertEquals(value(c, "select $1::date", "0001-01-01"), "0001-01-01")
    lu.assertEquals(value(c, "select 'infinity'::timestamp"), "infinity")
    lu.assertEquals(value(c, "select '1 day 02:00'::interval"), "1 day 02:00:00")
    lu.assertEquals(value(c, "select 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid"),
                    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
  end)
end

function TestPgTypes:test_arrays_both_ways()
  with_conn(function(c)
    lu.assertEquals(value(c, "select '{1,2,3}'::int[]"), {1, 2, 3})
    local a = value(c, "select array[1, null, 3]::int8[]")
    lu.assertEquals({a[1], a[2], a[3]}, {1, pg.null, 3})
    lu.assertEquals(value(c, "select '{}'::int[]"), {})
    lu.assertEquals(value(c, "select '{{1,2},{3,4}}'::int[]"), {{1, 2}, {3, 4}})
    lu.assertEquals(value(c, "select '{t,f}'::bool[]"), {true, false})
    lu.assertEquals(value(c, "select '{1.5,NaN}'::float8[]")[1], 1.5)
    lu.assertEquals(value(c, "select '[0:1]={7,8}'::int[]"), {7, 8})
    local tricky = {"a,b", "{x}", 'q"uote', "back\\slash", "NULL", "", " sp "}
    lu.assertEquals(value(c, "select $1::text[]", tricky), tricky)
    lu.assertEquals(value(c, "select $1::int[]", {{1, 2}, {3, 4}}), {{1, 2}, {3, 4}})
    lu.assertEquals(value(c, "select $1::float8[]", {0.1, -1e300}), {0.1, -1e300})
    lu.assertEquals(value(c, "select $1::bool[]", {true, false}), {true, false})
    local n = value(c, "select $1::int[]", {1, pg.null, 3})
    lu.assertIs(n[2], pg.null)
    lu.assertEquals(value(c, "select $1::bytea[]", {pg.bytea("\0\1"), pg.bytea("\255")}),
                    {"\0\1", "\255"})
    lu.assertEquals(value(c, "select $1::numeric[]", {"1.10", "2"}), {"1.10", "2"})
    lu.assertEquals(value(c, "select array['2024-01-01'::date]"), {"2024-01-01"})
    lu.assertEquals(value(c, "select cardinality($1::int[])", {}), 0)
  end)
end

function TestPgTypes:test_rows_columns_and_counts()
  with_conn(function(c)
    local rows = c:query("select g as n, g * 2 as twice from generate_series(1, 3) g")
    lu.assertEquals(rows.columns, {"n", "twice"})
    lu.assertEquals(rows.count, 3)
    lu.assertEquals(rows.command, "SELECT 3")
    lu.assertEquals(rows[3].twice, 6)
    c:exec("create temp table t (id int primary key, v text)")
    lu.assertEquals(c:exec("insert into t select g, 'x' from generate_series(1, 5) g"), 5)
    lu.assertEquals(c:exec("update t set v = $1 where id > $2", "y", 3), 2)
    lu.assertEquals(c:query("delete from t where id = 1").count, 1)
    lu.assertEquals(c:query("delete from t where id = 1").count, 0)
    lu.assertEquals(#c:query("select * from t where false"), 0)
    lu.assertEquals(c:query_one("select * from t where id = $1", 2), {id = 2, v = "x"})
    lu.assertNil(c:query_one("select * from t where id = $1", 99))
  end)
end

-- Many rows: NULL told from "" (a NULL field reads as "" in libpq), a
-- result large enough to be freed off the loop thread, and the collector
-- (stopped while 1,000 rows or more are built) running again after, also
-- after an error in the middle of the build, and left stopped if the
-- program stopped it; and rows wider than 16 columns.
function TestPgTypes:test_many_rows_nulls_empty_strings_and_the_collector()
  with_conn(function(c)
    local sql = [[select g as id, case g % 3 when 0 then null when 1 then '' else 'v' || g end as s,
                  case when g % 5 = 0 then null else g * 0.5::float8 end as f
                  from generate_series(1, 5000) g]]
    for _ = 1, 2 do
      local rows = c:query(sql)
      lu.assertEquals(#rows, 5000)
      lu.assertEquals(rows.count, 5000)
      for i = 1, #rows do
        local r = rows[i]
        lu.assertEquals(r.id, i)
        if i % 3 == 0 then lu.assertIs(r.s, pg.null)
        elseif i % 3 == 1 then lu.assertEquals(r.s, "")
        else lu.assertEquals(r.s, "v" .. i) end
        if i % 5 == 0 then lu.assertIs(r.f, pg.null) else lu.assertEquals(r.f, i * 0.5) end
      end
      lu.assertTrue(collectgarbage("isrunning"))
    end
    local decode = pg.config.json_decode
    pg.config.json_decode = function() error("decoder refused") end
    local ok, err = pcall(c.query, c, "select g, '{}'::jsonb as j from generate_series(1, 2000) g")
    pg.config.json_decode = decode
    lu.assertFalse(ok)
    lu.assertStrContains(tostring(err), "decoder refused")
    lu.assertTrue(collectgarbage("isrunning"))
    collectgarbage("stop")
    local rows = c:query(sql)
    local still = collectgarbage("isrunning")
    collectgarbage("restart")
    lu.assertEquals(#rows, 5000)
    lu.assertFalse(still)
    local cols = {}                      -- wider than the 16 types kept on the C stack
    for i = 1, 40 do cols[i] = ("%d as c%d"):format(i, i) end
    local wide = c:query("select " .. table.concat(cols, ", "))
    lu.assertEquals(#wide.columns, 40)
    for i = 1, 40 do lu.assertEquals(wide[1]["c" .. i], i) end
  end)
end

function TestPgTypes:test_prepared_statements()
  with_conn(function(c)
    lu.assertTrue(c:prepare("add", "select $1::int + $2::int as s"))
    lu.assertEquals(c:query_prepared("add", 2, 3)[1].s, 5)
    lu.assertEquals(c:exec_prepared("add", 1, 1), 1)
    local e = select(2, pcall(c.query_prepared, c, "nope", 1))
    lu.assertEquals(e.sqlstate, "26000")            -- no such prepared statement
    e = select(2, pcall(c.prepare, c, "add", "select 1"))
    lu.assertEquals(e.sqlstate, "42P05")            -- already exists
  end)
end

TestPgParams = support.suite({}, 20)

function TestPgParams:setUp() if not srv then lu.skip(why) end end

function TestPgParams:test_injection_looking_values_stay_values()
  with_conn(function(c)
    c:exec("create temp table users (name text)")
    c:exec("insert into users values ('alice')")
    for _, evil in ipairs{"'; drop table users; --", "x' or '1'='1", "$1", "\\'; select 1; --",
                          "' || (select pg_sleep(5)) || '", "\"users\"", "alice' --"} do
      lu.assertEquals(value(c, "select $1::text", evil), evil)
      lu.assertEquals(c:exec("insert into users values ($1)", evil), 1)
      lu.assertEquals(#c:query("select * from users where name = $1", evil), 1)
    end
    lu.assertEquals(value(c, "select count(*) from users"), 8)
    lu.assertEquals(#c:query("select * from users where name = $1", "x' or '1'='1"), 1)
  end)
end

function TestPgParams:test_bad_parameters_raise_clear_errors()
  with_conn(function(c)
    local ok, e = pcall(c.query, c, "select $1", print)
    lu.assertFalse(ok)
    lu.assertStrContains(tostring(e), "function cannot be a query parameter")
    ok, e = pcall(c.query, c, "select $1", {1, {a = 1}})
    lu.assertFalse(ok)
    ok, e = pcall(c.query, c, "select $1", setmetatable({}, {__name = "Thing"}))
    lu.assertStrContains(tostring(e), "Thing cannot be a query parameter")
    ok, e = pcall(c.query, c, "select $1::int", "not a number")
    lu.assertEquals(e.sqlstate, "22P02")
    ok, e = pcall(c.query, c, "select $1::int, $2::int", 1)   -- too few
    lu.assertEquals(e.sqlstate, "08P01")
    lu.assertEquals(value(c, "select 1"), 1)                  -- still usable
    ok, e = pcall(c.query, c, "select 1; select 2")            -- one statement only
    lu.assertEquals(e.sqlstate, "42601")
  end)
end

TestPgPipeline = support.suite({}, 20)

function TestPgPipeline:setUp() if not srv then lu.skip(why) end end

function TestPgPipeline:test_many_tasks_one_connection_in_order()
  with_conn(function(c)
    local n, jobs, seen = 200, {}, {}
    for i = 1, n do
      jobs[i] = function()
        if i == 100 then                         -- an error in the middle
          local ok, e = pcall(c.query, c, "select 1 / ($1::int - $1::int)", i)
          return ok and "no error" or e.sqlstate
        end
        local row = c:query("select $1::int as i, pg_backend_pid() as pid", i)[1]
        seen[#seen + 1] = row.i
        return row
      end
    end
    local peak = 0
    local watcher = async.spawn(function()
      for _ = 1, 3 do async.sleep(0); peak = math.max(peak, c:info().pending) end
    end)
    local r = async.gather(jobs)
    watcher:await()
    lu.assertEquals(r[100], "22012")           -- division by zero, alone
    local pid = r[1].pid
    for i = 1, n do
      if i ~= 100 then
        lu.assertEquals(r[i].i, i)
        lu.assertEquals(r[i].pid, pid)
      end
    end
    for k = 2, #seen do lu.assertTrue(seen[k] > seen[k - 1], "results come in send order") end
    lu.assertTrue(peak > 1, "statements were in flight together (peak " .. peak .. ")")
    lu.assertEquals(c:info().pending, 0)
  end)
end

TestPgErrors = support.suite({}, 20)

function TestPgErrors:setUp() if not srv then lu.skip(why) end end

function TestPgErrors:test_pg_error_fields()
  with_conn(function(c)
    c:exec("create temp table u (id int constraint u_pk primary key)")
    c:exec("insert into u values (1)")
    local ok, e = pcall(c.exec, c, "insert into u values ($1)", 1)
    lu.assertFalse(ok)
    lu.assertEquals(getmetatable(e), pg.PgError)
    lu.assertEquals(e.kind, "PgError")
    lu.assertEquals(e.sqlstate, "23505")
    lu.assertEquals(e.code, "23505")
    lu.assertEquals(e.constraint, "u_pk")
    lu.assertEquals(e.table, "u")
    lu.assertStrContains(e.detail, "(id)=(1)")
    lu.assertEquals(e.severity, "ERROR")
    lu.assertStrContains(tostring(e), "PgError 23505: duplicate key value")
    e = select(2, pcall(c.query, c, "select 1 from nowhere_table"))
    lu.assertEquals(e.sqlstate, "42P01")
    lu.assertEquals(e.position, 15)
    e = select(2, pcall(c.query, c, "select no_such_col"))
    lu.assertEquals(e.sqlstate, "42703")
    e = select(2, pcall(c.query, c, "do $$ begin raise exception 'boom' using hint = 'try again'; end $$"))
    lu.assertEquals(e.message, "boom")
    lu.assertEquals(e.hint, "try again")
  end)
end

function TestPgErrors:test_connection_errors_are_ioerrors_without_the_password()
  local l = require("async.core.net").tcp_listen("127.0.0.1", 0)
  local _, port = l:address()
  l:close()
  local ok, e = pcall(pg.connect, ("postgresql://u:hunter2pw@127.0.0.1:%d/db"):format(port))
  lu.assertFalse(ok)
  lu.assertEquals(e.kind, "IOError")
  lu.assertEquals(e.code, "ECONNREFUSED")
  lu.assertNotStrContains(tostring(e), "hunter2pw")
  local url = ("postgresql://postgres:wrong-secret-pw@127.0.0.1:%d/postgres"):format(srv.port)
  ok, e = pcall(pg.connect, url)
  lu.assertFalse(ok)
  lu.assertEquals(e.kind, "IOError")
  lu.assertStrContains(e.message, "password authentication failed")
  lu.assertNotStrContains(tostring(e), "wrong-secret-pw")
  ok, e = pcall(pg.connect, "host=/nonexistent/dir port=1")
  lu.assertEquals(e.code, "ENOENT")
  ok, e = pcall(pg.connect, "this is = not valid")
  lu.assertFalse(ok)
  lu.assertEquals(e.kind, "IOError")
  local c <close> = pg.connect(srv.tcp_url)       -- the right password works
  lu.assertEquals(value(c, "select current_user"), "postgres")
end

function TestPgErrors:test_misuse_raises()
  local c = connect()
  lu.assertError(c.query, c)                      -- no sql
  local f = async.future()
  async.call_soon(function() f:resolve(pcall(c.query, c, "select 1")) end)
  local ok, e = f:await()
  lu.assertFalse(ok)
  lu.assertStrContains(e, "not inside a task")
  c:close()
  c:close()                                       -- twice is harmless
  lu.assertEquals(c:status(), "closed")
  lu.assertErrorMsgContains("closed", c.query, c, "select 1")
  lu.assertErrorMsgContains("closed", c.prepare, c, "x", "select 1")
  lu.assertStrContains(tostring(c), "closed")
end

function TestPgErrors:test_closing_wakes_waiters()
  local c = connect()
  local t = async.spawn(function() return c:query("select pg_sleep(10)") end)
  async.sleep(0)
  c:close()
  local ok, e = pcall(t.await, t)
  lu.assertFalse(ok)
  lu.assertEquals(e.code, "ECANCELED")
end

function TestPgErrors:test_no_descriptor_or_handle_left()
  local a, b = io_.pair()
  a:close()
  b:close()
  local before = io_.fds()
  for _ = 1, 5 do
    local c = connect()
    c:query("select 1")
    c:close()
  end
  do local c = connect(); c:query("select 1") end   -- dropped: the collector closes it
  collectgarbage()
  for _ = 1, 3 do async.sleep(0) end
  lu.assertEquals(io_.fds(), before)
end

TestPgCancel = support.suite({}, 20)

function TestPgCancel:setUp() if not srv then lu.skip(why) end end

-- The server's view of a backend: its state and the query it runs.
local function activity(watch, pid)
  return watch:query_one("select state, query from pg_stat_activity where pid = $1", pid)
end

local function wait_running(watch, pid, pattern)
  io_.eventually(function()
    local a = activity(watch, pid)
    return a and a.state == "active" and a.query:find(pattern, 1, true)
  end, "the statement runs on the server")
end

function TestPgCancel:test_cancel_in_the_middle_of_pg_sleep()
  local c <close> = connect()
  local watch <close> = connect()
  local pid = c:info().pid
  local t = async.spawn(function() return c:query("select pg_sleep(10)") end)
  wait_running(watch, pid, "pg_sleep(10)")
  t:cancel()
  local ok, e = pcall(t.await, t)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_cancelled(e))
  -- The next statement queues behind the cancelled one: it answers only
  -- once the server has stopped pg_sleep, and says why it stopped.
  lu.assertEquals(async.wait_for(5, function() return value(c, "select 42") end), 42)
  lu.assertEquals(c:info().discarded, "57014")    -- query_canceled
  lu.assertEquals(c:info().cancels, 1)
  lu.assertEquals(activity(watch, pid).state, "idle")
end

function TestPgCancel:test_waiting_statement_shows_in_the_task_list()
  local c <close> = connect()
  local t = async.spawn(function() return c:query("select pg_sleep(10)") end)
  async.sleep(0)
  lu.assertEquals(t:info().waiting, "pg.query")
  lu.assertStrContains(async.dump(false), "pg.query")
  t:cancel()
  lu.assertFalse(pcall(t.await, t))
  lu.assertEquals(value(c, "select 1"), 1)
end

function TestPgCancel:test_query_timeout()
  local c <close> = connect()
  local ok, e = pcall(c.query, c, {"select pg_sleep(10)", timeout = 0.05})
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(e))
  lu.assertEquals(value(c, "select $1::int", 7), 7)
  lu.assertEquals(c:info().discarded, "57014")
  -- the connection's default deadline
  local d <close> = connect({query_timeout = 0.05})
  ok, e = pcall(d.exec, d, "select pg_sleep(10)")
  lu.assertTrue(async.is_timeout(e))
  lu.assertEquals(d:query_value("select 1"), 1)
  lu.assertEquals(d:query{"select $1::int as v", 5, timeout = 5}[1].v, 5)
end

function TestPgCancel:test_cancelled_connect_leaves_nothing()
  local t = async.spawn(pg.connect, srv.url)
  async.sleep(0)
  t:cancel()
  lu.assertFalse(pcall(t.await, t))
end

function TestPgCancel:test_cancel_behind_others_drops_only_its_result()
  local c <close> = connect()
  local a = async.spawn(function() return value(c, "select pg_sleep(0.05)::text || 'a'") end)
  local b = async.spawn(function() return value(c, "select 'b'") end)
  local d = async.spawn(function() return value(c, "select 'd'") end)
  async.sleep(0)
  b:cancel()
  lu.assertEquals(a:await(), "a")
  lu.assertFalse(pcall(b.await, b))
  lu.assertEquals(d:await(), "d")
  lu.assertEquals(c:info().pending, 0)
end

local ok, err = pcall(support.run, ...)
if srv then srv:stop() end
if not ok then error(err, 0) end
