-- wrk script of `make bench`: POST a JSON body to one path, and print the figures as one
-- JSON line at the end. Arguments (after `--`): PATH BODY_FILE FIRST_ID [API_KEY].
-- In the body, __N__ becomes a number unique to the request, __MID__ and __LAST__ the
-- middle and last part of a phone number unique to it (so every ProcessLead is a new lead).
local path, template, next_id, headers

function init(args)
  path = args[1]
  local f = assert(io.open(args[2], "r"))
  template = f:read("*a")
  f:close()
  next_id = tonumber(args[3])
  headers = {["content-type"] = "application/json"}
  if args[4] then
    headers["authorization"] = "Bearer " .. args[4]
  end
end

function request()
  local n = next_id
  next_id = next_id + 1
  local body = template
  if string.find(body, "__N__", 1, true) then
    body = body:gsub("__N__", tostring(n))
    body = body:gsub("__MID__", tostring(200 + math.floor(n / 10000) % 700))
    body = body:gsub("__LAST__", string.format("%04d", n % 10000))
  end
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": %d, "status_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
