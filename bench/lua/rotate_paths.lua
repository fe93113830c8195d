-- Requests rotating over a list of paths: GET /products?search=<term>&limit=20 over a set of search
-- terms, each thread starting at a different one.
-- Expects the `bench` table the driver writes above: paths (already URL-encoded).

local paths = bench.paths
local next_index = 0

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  next_index = ((thread_number or 0) * 7) % #paths
end

function request()
  next_index = next_index % #paths + 1
  return wrk.format("GET", paths[next_index])
end
