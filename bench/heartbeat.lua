-- wrk script for bench/run.py: bare check-ins (heartbeats) of connectors with nothing pending.
--
--   wrk -t2 -c32 -d15s --latency -s bench/heartbeat.lua http://127.0.0.1:PORT -- CHECKINS_FILE
--
-- CHECKINS_FILE holds one "PATH CREDENTIAL" line per connector: its check-in path
-- (/client/v4/accounts/{a}/magic/connectors/{c}/checkin) and its own device
-- credential. Each request is a POST without a body, formatted once in init().

local requests = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
end

function init(args)
   local file = args[1]
   if not file then error("usage: wrk ... -s heartbeat.lua URL -- CHECKINS_FILE") end
   for line in io.lines(file) do
      local path, credential = line:match("^(%S+) (%S+)$")
      if path then
         local headers = {}
         for key, value in pairs(wrk.headers) do headers[key] = value end
         headers["Authorization"] = "Bearer " .. credential
         headers["Accept"] = "application/json"
         headers["Content-Length"] = "0"
         requests[#requests + 1] = wrk.format("POST", path, headers)
      end
   end
   if #requests == 0 then error("no check-ins in " .. file) end
   math.randomseed(os.time() * 1000 + (id or 0) * 7919)
   for _ = 1, 10 do math.random() end
end

function request()
   return requests[math.random(#requests)]
end
