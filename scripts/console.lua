-- console.lua: a console on a running program. The program serves the REPL
-- on a Unix socket (0600: only its user may connect); an operator attaches
-- with `lasync attach PATH` and looks at tasks, reads and changes globals,
-- while the program goes on. Here the program plays the operator itself.
-- The same from the command line: `lasync --console /tmp/app.sock app.lua`.
local async = require "async"

local path = os.tmpname() .. ".sock"
local console <close> = async.console.listen(path)

hits = 0                                    -- the program's state: a global
local worker = async.spawn(function()
  while true do hits = hits + 1; async.sleep(0.001) end
end)
worker:set_name("worker")

-- The operator's session: send lines, read until the next prompt.
local conn <close> = async.net.connect_unix(path)
local function until_prompt()
  local got = ""
  while not got:find("\n?> $") do got = got .. assert(conn:read(), "console closed") end
  return got
end
local function say(line)
  conn:write(line, "\n")
  return until_prompt()
end
until_prompt()                              -- the banner
local seen = say("hits > 0")
print("hits > 0 ->", seen:match("(%a+)"))
assert(seen:find("true"))
assert(say("tasks()"):find("worker"))
say("paused = true")                        -- change a global of the program
assert(paused == true)
conn:write(".exit\n")                       -- leaving ends the session, not the program
conn:read_all()                             -- the console closed the connection
assert(console:sessions() == 0)
assert(worker:state() ~= "done")            -- the program goes on
worker:cancel()
print("console: ok")
