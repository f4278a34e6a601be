-- placeholder
local core = require "async.core"
local async = {}
for k, v in pairs(core) do async[k] = v end
return async
