-- wrk: each connection waits DELAY_MS milliseconds after each response before its next
-- request, so that C connections offer about C * 1000 / DELAY_MS requests/s whatever the
-- server (a fixed load below saturation, for latency percentiles).
local delay_ms = tonumber(os.getenv("DELAY_MS") or "10")

function delay()
    return delay_ms
end
