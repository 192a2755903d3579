-- wrk script for bench/run.py: Get Event on random EXISTING events.
--
--   wrk -t2 -c32 -d15s --latency -s bench/get_event.lua http://127.0.0.1:PORT -- PATHS_FILE TOKEN
--
-- PATHS_FILE holds one request path per line
-- (/client/v4/accounts/{a}/magic/connectors/{c}/telemetry/events/{t}.{n}),
-- all of events that were loaded. Requests are formatted once in init(), so
-- the per-request Lua cost is one random pick. Non-2xx answers are counted by
-- wrk itself ("Non-2xx or 3xx responses") and checked by run.py; no response()
-- hook, so that wrk spends as little CPU as possible on the shared cores.

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

local requests = {}

function init(args)
   local file = args[1]
   local token = args[2]
   if not file or not token then
      error("usage: wrk ... -s get_event.lua URL -- PATHS_FILE TOKEN")
   end
   local headers = {}
   for key, value in pairs(wrk.headers) do headers[key] = value end
   headers["Authorization"] = "Bearer " .. token
   headers["Accept"] = "application/json"
   for path in io.lines(file) do
      if #path > 0 then
         requests[#requests + 1] = wrk.format("GET", path, headers)
      end
   end
   if #requests == 0 then error("no paths in " .. file) end
   math.randomseed(os.time() * 1000 + (id or 0) * 7919)
   for _ = 1, 10 do math.random() end
end

function request()
   return requests[math.random(#requests)]
end
