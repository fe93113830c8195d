-- One request sent over and over: bench.method to bench.path, with bench.body as JSON when it is not
-- empty and a bearer token when bench.token is not empty (POST /products as an admin, GET
-- /auth/validate as a customer). No request() function, so wrk builds the request once.
-- Expects the `bench` table the driver writes above: method, path, body, token.

wrk.method = bench.method
wrk.path = bench.path
if bench.body ~= "" then
  wrk.body = bench.body
  wrk.headers["Content-Type"] = "application/json"
end
if bench.token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. bench.token
end
