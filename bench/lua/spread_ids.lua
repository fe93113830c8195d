-- Requests spread over many resources: each one takes a random id from bench.ids and puts it in
-- place of {id} in bench.path (GET /products/{id}, POST /products/{id}/stock-adjustments).
-- Expects the `bench` table the driver writes above: method, path, ids, body ("" for none), token.

local headers = {}
if bench.body ~= "" then
  headers["Content-Type"] = "application/json"
end
if bench.token ~= "" then
  headers["Authorization"] = "Bearer " .. bench.token
end
local body = nil
if bench.body ~= "" then
  body = bench.body
end
local ids = bench.ids

-- Each thread runs in a Lua state of its own: give each a different random sequence.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  math.randomseed(os.time() * 100 + (thread_number or 0))
end

function request()
  local id = tostring(ids[math.random(#ids)])
  local path = string.gsub(bench.path, "{id}", id)
  return wrk.format(bench.method, path, headers, body)
end
