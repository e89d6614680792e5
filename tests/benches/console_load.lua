-- wrk script of the console load benchmark (tests/benches/console_load.rs,
-- which signs in, picks a photo and sets the environment below):
--
--   wrk -t2 -c20 -d60s --latency --timeout 10s -s console_load.lua https://127.0.0.1:PORT/
--
-- Each request is a signed-in GET from a realistic mix of console screens and
-- API calls, taken in turn. wrk is closed-loop; `delay()` paces it to a fixed
-- rate: every thread keeps a schedule of one request per THREADS/RATE
-- seconds and each connection waits for the next free slot, so the rate holds
-- as long as the connections are not all busy (at 20 connections and
-- 200 req/s, while responses take under 100 ms). A slot missed because every
-- connection was busy is sent late, and wrk measures its latency from the
-- moment it is sent; the largest such lateness is reported as `lag_max_ms`.
--
-- Environment:
--   CONSOLE_LOAD_COOKIE   the session cookie, `name=value` (required)
--   CONSOLE_LOAD_ASSET    an asset id for the photo routes (required)
--   CONSOLE_LOAD_RATE     requests per second over all threads (default 200)
--   CONSOLE_LOAD_THREADS  wrk's -t (default 2)
--   CONSOLE_LOAD_PATHS    comma-separated paths instead of the mix (optional)
--
-- Every response that is not 2xx is counted (by status); `done()` prints one
-- machine-readable `CONSOLE_LOAD key=value …` line after wrk's own report.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } console_load_timespec;
int clock_gettime(int clock_id, console_load_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("console_load_timespec")

local function now_ms()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
   return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

local function env_number(name, default)
   local value = tonumber(os.getenv(name) or "")
   if value == nil or value <= 0 then
      return default
   end
   return value
end

local function required(name)
   local value = os.getenv(name)
   if value == nil or value == "" then
      error(name .. " is not set (run this script through `cargo bench -p consentry-tests --bench console_load`)")
   end
   return value
end

local cookie = required("CONSOLE_LOAD_COOKIE")
local asset = required("CONSOLE_LOAD_ASSET")
local rate = env_number("CONSOLE_LOAD_RATE", 200)
local thread_count = env_number("CONSOLE_LOAD_THREADS", 2)

local function mix()
   local given = os.getenv("CONSOLE_LOAD_PATHS")
   local paths = {}
   if given ~= nil and given ~= "" then
      for path in string.gmatch(given, "[^,]+") do
         table.insert(paths, (string.gsub(path, "{id}", asset)))
      end
      return paths
   end
   return {
      "/",
      "/photos",
      "/photos/" .. asset,
      "/photos/" .. asset .. "/thumb",
      "/api/v1/photos",
      "/api/v1/photos/" .. asset .. "/decisions",
      "/api/v1/status",
      "/status.json",
      "/healthz",
   }
end

-- Main state: number the threads, and keep them for `done()`.

local threads = {}

function setup(thread)
   thread:set("thread_id", #threads)
   table.insert(threads, thread)
end

-- Thread state.

local requests = {}
local next_index = 1
local interval_ms = 1000 * thread_count / rate
local next_due = nil
non2xx = 0
statuses = {}
first_bad = ""
lag_max_ms = 0

function init(args)
   -- wrk.format adds the Host header (host:port) from wrk.headers.
   for _, path in ipairs(mix()) do
      table.insert(requests, wrk.format("GET", path, {
         ["Cookie"] = cookie,
         ["Accept"] = "text/html,application/json;q=0.9,*/*;q=0.8",
      }))
   end
   -- Threads start at different places in the mix and the schedule.
   local id = thread_id or 0
   next_index = id % #requests + 1
   next_due = now_ms() + interval_ms * id / thread_count
end

function delay()
   local now = now_ms()
   local slot = next_due
   next_due = next_due + interval_ms
   if slot < now then
      lag_max_ms = math.max(lag_max_ms, now - slot)
      return 0
   end
   return math.floor(slot - now)
end

function request()
   local r = requests[next_index]
   next_index = next_index % #requests + 1
   return r
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      statuses[status] = (statuses[status] or 0) + 1
      if first_bad == "" then
         local text = string.gsub(string.sub(body or "", 1, 160), "%s+", " ")
         first_bad = status .. " " .. (headers["Location"] or headers["location"] or "") .. " " .. text
      end
   end
end

function done(summary, latency, _)
   local bad, by_status, lag, first = 0, {}, 0, ""
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("non2xx") or 0)
      for status, count in pairs(thread:get("statuses") or {}) do
         by_status[status] = (by_status[status] or 0) + count
      end
      lag = math.max(lag, thread:get("lag_max_ms") or 0)
      if first == "" then
         first = thread:get("first_bad") or ""
      end
   end
   local parts = {}
   for status, count in pairs(by_status) do
      table.insert(parts, status .. ":" .. count)
   end
   table.sort(parts)
   local seconds = summary.duration / 1e6
   local errors = summary.errors
   io.write(string.format(
      "CONSOLE_LOAD requests=%d duration_s=%.3f rate=%.2f mean_ms=%.3f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f"
         .. " non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d lag_max_ms=%.1f statuses=%s\n",
      summary.requests, seconds, summary.requests / seconds, latency.mean / 1000,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
      bad, errors.connect, errors.read, errors.write, errors.timeout, lag,
      #parts > 0 and table.concat(parts, ",") or "-"))
   if first ~= "" then
      io.write("CONSOLE_LOAD_FIRST_BAD " .. first .. "\n")
   end
end
