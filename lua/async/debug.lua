-- async.debug: seeing inside the loop. tasks() lists the live tasks with
-- what each waits on and where; dump() prints them as a tree of parents and
-- children, identical siblings grouped and counted, so 10,000 tasks
-- waiting on one queue read as one line.
local core = require "async.core"

local M = {}

-- The first frame of user code in a traceback: "file.lua:12".
local function where(stack)
  if not stack then return nil end
  for line in stack:gmatch("[^\n]+") do
    local loc = line:match("^%s*([^%s:]+%.lua:%d+):")
    if loc and not loc:match("^async/") then return loc end
  end
  return nil
end

-- tasks(): a list of {id, name, state, parent, waiting, stack, where,
-- task}, by id.
function M.tasks()
  local list = {}
  for _, t in ipairs(core.tasks()) do
    local info = t:info()
    info.task = t
    info.where = where(info.stack)
    list[#list + 1] = info
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  return list
end

local function label(info)
  local s = info.state
  if info.waiting then s = s .. " on " .. info.waiting:gsub("%(%d+%.?%d* s left%)", "(timed)") end
  if info.where then s = s .. " at " .. info.where end
  return s
end

-- Lines of the tree below `parent` (an id), indented by `prefix`.
local function render(out, children, parent, prefix)
  local kids = children[parent]
  if not kids then return end
  -- group siblings with the same state, wait and stack, keeping first-seen order
  local groups, order = {}, {}
  for _, info in ipairs(kids) do
    local key = label(info) .. "\0" .. (info.stack or "")
    if not groups[key] then groups[key] = {}; order[#order + 1] = key end
    local g = groups[key]
    g[#g + 1] = info
  end
  for i, key in ipairs(order) do
    local g = groups[key]
    local last = i == #order
    local branch = prefix .. (last and "└─ " or "├─ ")
    local first = g[1]
    local head = #g == 1 and first.name
      or ("%d × %s .. %s"):format(#g, first.name, g[#g].name)
    local cpu = 0
    for _, info in ipairs(g) do cpu = cpu + (info.cpu or 0) end
    -- CPU time is counted while the watchdog is on (debug mode)
    out[#out + 1] = branch .. head .. ": " .. label(first) ..
      (cpu >= 1e-4 and ("  [cpu %.1f ms]"):format(cpu * 1e3) or "")
    for _, info in ipairs(g) do
      render(out, children, info.id, prefix .. (last and "   " or "│  "))
    end
  end
end

-- dump([file]): prints the task tree (to io.stderr by default); returns it.
function M.dump(file)
  local list = M.tasks()
  local alive, children = {}, {}
  for _, info in ipairs(list) do alive[info.id] = true end
  for _, info in ipairs(list) do
    local p = alive[info.parent] and info.parent or 0
    children[p] = children[p] or {}
    table.insert(children[p], info)
  end
  local out = {("lasync: %d live task%s"):format(#list, #list == 1 and "" or "s")}
  render(out, children, 0, "")
  local text = table.concat(out, "\n") .. "\n"
  if file ~= false then (file or io.stderr):write(text) end
  return text
end

-- deadlock([file]): the report of a deadlock, as Go's "all goroutines are
-- asleep": every live task with what it waits on and its stack, tasks with
-- the same wait and stack grouped, the first task (the main one) first.
-- Writes it to file (io.stderr by default; false: nowhere) and returns it.
function M.deadlock(file)
  local list = M.tasks()
  local groups, order = {}, {}
  for _, info in ipairs(list) do
    local key = label(info) .. "\0" .. (info.stack or "")
    if not groups[key] then groups[key] = {}; order[#order + 1] = key end
    table.insert(groups[key], info)
  end
  local out = {("deadlock: the main task is waiting but nothing is left that could wake "
                .. "it; %d task%s blocked:"):format(#list, #list == 1 and " is" or "s are")}
  for _, key in ipairs(order) do
    local g = groups[key]
    local head = #g == 1 and ("task '%s'"):format(g[1].name)
      or ("%d tasks '%s' .. '%s'"):format(#g, g[1].name, g[#g].name)
    out[#out + 1] = ""
    out[#out + 1] = head .. ": " .. label(g[1])
    local lines = {}
    for line in (g[1].stack or "(no stack)"):gmatch("[^\n]+") do
      if line:match("async/testing%.lua:") then    -- a test's: the runner below is noise
        if lines[#lines]:match("in function 'pcall'") then lines[#lines] = nil end
        break
      end
      lines[#lines + 1] = "    " .. line:gsub("^\t", "")
    end
    table.move(lines, 1, #lines, #out + 1, out)
  end
  local text = table.concat(out, "\n") .. "\n"
  if file ~= false then (file or io.stderr):write(text) end
  return text
end

return M
