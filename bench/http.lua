-- wrk script for http.commands_per_sec: durable commands (a logistics tracking event, accepted
-- in any state and written to the case history) spread over the cases C0..C999. The requests
-- are formatted once in init(), and no response() callback is set: wrk then spends its CPU
-- (the same two cores as the server's) on the connections, and counts non-2xx answers itself.
local requests, i = {}, 0

init = function(args)
  local headers = {
    ["Authorization"] = "Bearer bench-logistics",
    ["Content-Type"] = "application/json",
  }
  for n = 0, 999 do
    requests[n] = wrk.format("POST", "/v1/cases/C" .. n .. "/actions", headers,
                             '{"action":"return_delivered"}')
  end
end

request = function()
  i = (i + 1) % 1000
  return requests[i]
end
