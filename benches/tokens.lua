-- wrk script: every request presents the next token of KNOWMIND_TOKENS (one per line).
local tokens = {}
for line in io.lines(os.getenv("KNOWMIND_TOKENS")) do
  tokens[#tokens + 1] = line
end
local i = 0

setup = function(thread)
  thread:set("offset", math.random(#tokens))
end

init = function()
  i = (offset or 0) % #tokens
end

request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/v1/notes?limit=10", { ["Authorization"] = "Bearer " .. tokens[i] })
end
