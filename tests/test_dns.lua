-- tests/test_dns.lua: async.dns.resolve through the system's resolver:
-- names from /etc/hosts, literals, families, failures (in a network
-- namespace of its own, so no query leaves the machine) and cancellation
-- while the lookup runs on the thread pool.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local dns = async.dns

local function contains(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

TestDns = support.suite({}, 20)

function TestDns:test_localhost()
  local addrs = dns.resolve("localhost")
  lu.assertTrue(contains(addrs, "127.0.0.1"), table.concat(addrs, " "))
  for i = 1, #addrs do                    -- distinct
    for j = i + 1, #addrs do lu.assertNotEquals(addrs[i], addrs[j]) end
  end
end

function TestDns:test_literals_and_families()
  lu.assertEquals(dns.resolve("127.0.0.1"), {"127.0.0.1"})
  lu.assertEquals(dns.resolve("::1"), {"::1"})
  lu.assertEquals(dns.resolve("127.0.0.1", "inet"), {"127.0.0.1"})
  lu.assertEquals(dns.resolve("127.0.0.1", 4), {"127.0.0.1"})
  for _, a in ipairs(dns.resolve("localhost", 4)) do lu.assertStrMatches(a, "%d+%.%d+%.%d+%.%d+") end
end

function TestDns:test_bad_arguments()
  lu.assertErrorMsgContains("string expected", dns.resolve)
  lu.assertErrorMsgContains("not a host name", dns.resolve, "")
  lu.assertErrorMsgContains("family must be 4, 6", dns.resolve, "localhost", 5)
  lu.assertErrorMsgContains("invalid option 'ipx'", dns.resolve, "localhost", "ipx")
end

-- Failure, where no query can leave the machine: a network namespace of
-- its own has no interface but a loopback that is down.
function TestDns:test_failure_is_an_error_value()
  local cmd = "unshare -n " .. support.shell_quote(support.LASYNC) .. " -e " ..
    support.shell_quote("dofile(" .. string.format("%q", "/dev/stdin") .. ")")
  local r = support.sh("printf '%s' " .. support.shell_quote([[
    local ok, err = pcall(async.dns.resolve, "no-such-host.invalid")
    assert(not ok)
    print(err.kind, err.code:match("^EAI_") ~= nil, err.op, err.address)
    print(tostring(err):match("^resolve no%-such%-host%.invalid: .+ %(EAI_[A-Z]+%)$") ~= nil)
    local ok2, err2 = pcall(async.net.connect, "no-such-host.invalid", 80)
    print(err2.op, err2.code:match("^EAI_") ~= nil)
  ]]) .. " | " .. cmd)
  if r.status ~= 0 and r.stderr:match("unshare") then lu.skip("unshare -n not permitted here: " .. r.stderr) end
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertEquals(r.stdout, "IOError\ttrue\tresolve\tno-such-host.invalid\ntrue\nresolve\ttrue\n")
end

-- Cancelled while getaddrinfo runs (or waits for a thread): the task ends
-- at once; the result, when it comes, is dropped (ASan checks the rest).
function TestDns:test_cancel_while_resolving()
  local tasks = {}
  for i = 1, 8 do tasks[i] = async.spawn(dns.resolve, "localhost") end
  async.sleep(0)                          -- all waiting now
  for i = 1, 8 do lu.assertEquals(tasks[i]:state(), "waiting") end
  for i = 1, 8 do tasks[i]:cancel() end
  for i = 1, 8 do
    local ok, err = pcall(tasks[i].await, tasks[i])
    lu.assertFalse(ok)
    lu.assertTrue(async.is_cancelled(err))
  end
  -- The pool is still usable, and a timeout composes the same way.
  lu.assertTrue(contains(dns.resolve("localhost"), "127.0.0.1"))
  local ok = pcall(async.timeout, 0, dns.resolve, "localhost")
  lu.assertFalse(ok)
end

support.run(...)
