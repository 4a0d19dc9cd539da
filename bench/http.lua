-- wrk script for http.commands_per_sec: durable commands (a logistics tracking event, accepted
-- in any state and written to the case history) spread over the cases C0..C999.
local i = 0
local headers = {
  ["Authorization"] = "Bearer bench-logistics",
  ["Content-Type"] = "application/json",
}
local body = '{"action":"return_delivered"}'
request = function()
  i = i + 1
  return wrk.format("POST", "/v1/cases/C" .. (i % 1000) .. "/actions", headers, body)
end
response = function(status, headers, body)
  if status ~= 200 then
    io.stderr:write("bench: status " .. status .. ": " .. body .. "\n")
  end
end
