package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

TestSmoke = support.suite {}
function TestSmoke:test_spawn_await()
  local t = async.spawn(function(a, b) async.sleep(0) return a + b end, 1, 2)
  lu.assertEquals(t:await(), 3)
end
function TestSmoke:test_leak_is_caught()
  local t = async.spawn(function() async.sleep(100) end)
  local ok, err = pcall(support.check_clean)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "test left tasks running")
  lu.assertTrue(t:cancelled())
end

support.run(...)
