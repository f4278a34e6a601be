-- A planted order-dependent bug, for tests/test_shuffle.lua: it passes in
-- the default (FIFO) order and fails under some `lasync test --shuffle`
-- seeds. Not one of the suites `make test` runs (tests/test_*.lua only).
--
-- The bug: open_once is a check-then-act with a wait between the check and
-- the act and no lock (scripts/lock_counter.lua's mistake). The second task
-- writes a log line first, so in FIFO order the first task's act always
-- lands before the second task's check: the test passes. When the ready
-- tasks of one round run in another order, both see no connection and both
-- open one.
local lu = require "luaunit"
local testing = require "async.testing"

TestPlanted = testing.suite({}, {virtual_clock = true})

function TestPlanted:test_one_connection_is_opened()
  local conn, opened = nil, 0
  local function open_once()
    if conn == nil then              -- check
      async.sleep(0)                 -- the connect's round trip
      opened = opened + 1            -- act
      conn = {id = opened}
    end
    return conn
  end
  local a = async.spawn(open_once)
  local b = async.spawn(function()
    async.sleep(0)                   -- writes a log line first
    return open_once()
  end)
  async.gather(a, b)
  lu.assertEquals(opened, 1)
end

testing.run(...)
