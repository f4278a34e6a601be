-- bench/redis/ops.lua PORT [TASKS] [N]: N commands (SET then GET, alternating)
-- from TASKS tasks on one client (one connection, pipelined by itself).
local port, tasks, n = tonumber(arg[1]), tonumber(arg[2] or "100"), tonumber(arg[3] or "100000")
local r <close> = async.redis.connect{host = "127.0.0.1", port = port}
local per = n // tasks // 2
local t0 = async.time()
async.scope(function(s)
  for t = 1, tasks do
    s:spawn(function()
      local key = "k" .. t
      for i = 1, per do
        r:set(key, i)
        if r:get(key) ~= tostring(i) then error("wrong value") end
      end
    end)
  end
end)
local t = async.time() - t0
print(("ok t=%.4f ops=%d ops_per_s=%.0f"):format(t, per * tasks * 2, per * tasks * 2 / t))
