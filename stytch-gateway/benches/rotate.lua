-- wrk: GET /whoami with each credential of the file TOKENS in turn (one per line), each wrk
-- thread starting at its own offset. Used with one session's two credentials (its opaque
-- token and a JWT) too, so the one- and many-session runs cost wrk the same.
local tokens = {}
local next_index = 1
local counter = 0

function setup(thread)
    counter = counter + 1
    thread:set("offset", counter)
end

function init(args)
    for line in io.lines(os.getenv("TOKENS")) do
        if #line > 0 then tokens[#tokens + 1] = line end
    end
    next_index = ((offset or 1) * 7919) % #tokens + 1
end

function request()
    local token = tokens[next_index]
    next_index = next_index % #tokens + 1
    return wrk.format("GET", "/whoami", { ["Authorization"] = "Bearer " .. token })
end
