-- Varies the client labels and id per request so every rule of the config is exercised:
-- 1 in 4 requests is a canary, every request has its own client id (percent rule buckets).
local regions = {"eu-west", "us-east", "ap-south", "eu-central"}
local n = 0
request = function()
  n = n + 1
  local headers = {
    ["X-Client-Label-Region"] = regions[(n % 4) + 1],
    ["X-Client-Id"] = "host-" .. n,
  }
  if n % 4 == 0 then headers["X-Client-Label-Canary"] = "true" end
  return wrk.format("GET", nil, headers)
end
