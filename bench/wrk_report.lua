-- wrk script for bench/run.py (the peers' bench/wrk_req.lua plus a per-response check).
--   WRK_METHOD (GET|POST), WRK_BODY_FILE (path of the JSON body, POST only),
--   WRK_AUTHORIZATION (an Authorization header for every request, optional),
--   WRK_EXPECT_BYTES (length of the verified response body; every response is compared)
-- done() prints one line "JSON:{...}" with wrk's summary (latencies in microseconds) and the
-- number of responses that were not 2xx, had another body length, or contained "errors".
local method = os.getenv("WRK_METHOD") or "GET"
wrk.method = method
local body_file = os.getenv("WRK_BODY_FILE")
if body_file then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end
local authorization = os.getenv("WRK_AUTHORIZATION")
if authorization then
  wrk.headers["Authorization"] = authorization
end
local expect_bytes = tonumber(os.getenv("WRK_EXPECT_BYTES") or "")

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad_status, bad_size, bad_errors = 0, 0, 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    bad_status = bad_status + 1
  elseif expect_bytes and #body ~= expect_bytes then
    bad_size = bad_size + 1
  elseif string.find(body, '"errors"', 1, true) then
    bad_errors = bad_errors + 1
  end
end

function done(summary, latency, requests)
  local bs, bz, be = 0, 0, 0
  for _, t in ipairs(threads) do
    bs = bs + t:get("bad_status")
    bz = bz + t:get("bad_size")
    be = be + t:get("bad_errors")
  end
  local e = summary.errors
  io.write(string.format(
    'JSON:{"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"err_connect":%d,"err_read":%d,"err_write":%d,' ..
    '"err_status":%d,"err_timeout":%d,"bad_status":%d,"bad_size":%d,"bad_errors":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max, e.connect, e.read, e.write, e.status, e.timeout, bs, bz, be))
end
