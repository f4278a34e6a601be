-- Seeing inside a running program: async.dump() prints the live tasks as a
-- tree of parents and children, what each waits on and where, with
-- identical siblings grouped (here 1,000 workers waiting on one future read
-- as one line). `kill -QUIT <pid>` prints the same from outside.
local jobs = async.future()
local text
async.scope(function(group)
  for _ = 1, 1000 do
    group:spawn(function() jobs:await() end)        -- idle workers
  end
  local ticker = group:spawn(function()
    while true do async.sleep(1) end
  end)
  ticker:set_name("ticker")
  async.sleep(0)
  text = async.dump(io.stdout)
  jobs:resolve()                                    -- let the workers finish
  ticker:cancel()
end)
assert(text:find("1000 × task%-%d+ %.%. task%-%d+: waiting on future at scripts/dump_tasks.lua:9"),
       "the workers are one line")
assert(text:find("ticker: waiting on sleep %(timed%) at scripts/dump_tasks.lua:12"))
assert(#async.tasks() == 1, "only the main task is left")
