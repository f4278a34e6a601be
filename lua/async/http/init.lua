-- async.http: the HTTP client (async.http.client) and server
-- (async.http.server) in one table.
local http = {}

local server = require "async.http.server"
http.serve = server.serve
http.error = server.error
http.HttpError = server.HttpError
http.router = require("async.http.router").new

return http
