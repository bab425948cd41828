-- Counts every response whose status is not 2xx (wrk's own counter lumps 3xx with
-- 2xx), per thread, and prints the total at the end: "non-2xx N".
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("bad")
  end
  io.write(string.format("non-2xx %d\n", total))
end
