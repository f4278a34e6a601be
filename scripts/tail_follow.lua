-- tail_follow.lua: `tail -f` with tasks. A writer task appends log lines to
-- a file at its own pace, sometimes half a line at a time; a follower task
-- reads the file as it grows and hands on only complete lines, until it
-- sees the END line. Both are plain loops; async.fs does the I/O on libuv's
-- thread pool, so neither blocks the other.
local async = require "async"
local fs = async.fs

local dir = fs.temp_dir("tail-")
local path = dir .. "/app.log"
fs.write_file(path, "")                  -- the log exists, empty
local LINES = 200

local writer = async.spawn(function()
  local log <close> = fs.open(path, "a")
  for i = 1, LINES do
    local line = ("%04d level=%s msg=%q\n"):format(i, i % 7 == 0 and "warn" or "info",
                                                   ("event number " .. i))
    if i % 10 == 0 then                  -- a line written in two parts
      local cut = #line // 2
      log:write(line:sub(1, cut))
      async.sleep(0.003)
      log:write(line:sub(cut + 1))
    else
      log:write(line)
    end
    if i % 25 == 0 then async.sleep(0.01) end
  end
  log:write("END\n")
end)

-- Follows path from its start; calls on_line for each complete line until
-- on_line returns true. Polls when it has read everything (as tail does
-- without inotify).
local function follow(p, on_line, poll)
  local f <close> = fs.open(p)
  local partial = ""
  while true do
    local chunk = f:read()
    if chunk == nil then
      async.sleep(poll)                  -- at the end for now: wait for more
    else
      local data = partial .. chunk
      local from = 1
      for line, stop in data:gmatch("([^\n]*)\n()") do
        if on_line(line) then return end
        from = stop
      end
      partial = data:sub(from)           -- keep half a line for later
    end
  end
end

local got, warnings = {}, 0
local follower = async.spawn(follow, path, function(line)
  if line == "END" then return true end
  got[#got + 1] = line
  if line:find("level=warn", 1, true) then warnings = warnings + 1 end
end, 0.002)

async.wait_for(10, follower)
writer:await()

assert(#got == LINES, ("%d of %d lines followed"):format(#got, LINES))
for i = 1, LINES do
  assert(got[i]:sub(1, 4) == ("%04d"):format(i), "line " .. i .. " whole and in order: " .. got[i])
end
assert(warnings == LINES // 7)
fs.remove(dir, {recursive = true})
print(("followed %d lines as they were written (%d warnings), halves joined; last: %s")
      :format(#got, warnings, got[#got]))
