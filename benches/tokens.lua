-- wrk script: every request presents the next token of KNOWMIND_TOKENS (one per line), on the
-- path KNOWMIND_PATH.
local path = os.getenv("KNOWMIND_PATH")
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
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[i] })
end
