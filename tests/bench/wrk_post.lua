-- wrk_post.lua - JSON POSTs for `make bench`, every body unique: guard
-- mode answers a repeated request from the journal without sending it, so
-- repeats would measure replays. A body carries the run's nonce (the
-- script's argument), the thread's number and the thread's own counter.
-- usage: wrk -s wrk_post.lua URL -- NONCE

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

-- setup() runs in wrk's main Lua state, once per thread, before any
-- request: it numbers the threads.
local threads = 0
function setup(thread)
   threads = threads + 1
   thread:set("thread_id", threads)
end

-- The rest runs in each thread's own Lua state.
local nonce = "0"
local counter = 0

function init(args)
   nonce = args[1] or nonce
end

function request()
   counter = counter + 1
   local body = string.format(
      '{"run":"%s","thread":%d,"n":%d,"amount":1299,"currency":"eur",' ..
      '"customer":"cus_4QFJ8Rpqx1","description":"bench order"}',
      nonce, thread_id, counter)
   return wrk.format(nil, nil, nil, body)
end
