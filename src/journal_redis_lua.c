/* journal_redis_lua.c - the scripts the Redis journal runs on the server.
 *
 * Each write, and each look at a key in guard mode, is one script: Redis
 * runs a script alone, so what it reads and what it writes are one atomic
 * step, whatever other machines do meanwhile. The layout of the keys
 * (P is the prefix, REDIS_PREFIX):
 *
 *   P id            counter: attempt ids
 *   P log           stream: the attempt log, capped; "e" = "b" (an attempt
 *                   began: all its fields, w its owner) or "f" (it ended:
 *                   o, s, d); "ep": the epoch of its id
 *   P epoch         see PRELUDE
 *   P k:KEY         hash: the key's state. n: its highest attempt number;
 *                   b: n when it was last forgotten; f: the first attempt's
 *                   time since then; u: attempts since then whose outcome
 *                   is unknown; p:ID: "OWNER PID" of each attempt in
 *                   flight; v: bumped at every change (guard mode's claim
 *                   records only if v is what it looked at)
 *   P a:KEY         hash: the key's final answer (n, s, big, b), expiring
 *                   with the window
 *   P att:ID        hash: an attempt in flight (k, n, w: its window, o:
 *                   its owner, e: its epoch, l: its lease lapsed), until
 *                   it ends
 *   P op:FP16       hash: the newest generation of a fingerprint (g) and
 *                   its first attempt's time (t): the window's state
 *   P owner:TOKEN   a process's lease: while it exists, the process's
 *                   attempts in flight are alive
 *   P pend:TOKEN    set: a process's attempts in flight
 *   P secret, P version
 *
 * A script names the keys it builds from its arguments rather than in
 * KEYS: fine on one Redis server (or a primary with replicas), not on a
 * Redis Cluster (README, Limits).
 */
#include "journal_redis.h"

/* What every script shares: P, the log, the epoch, and how an attempt in
 * flight ends. ARGV[1] is always the prefix, ARGV[2] the log's cap and
 * ARGV[3] an epoch to use if the server has none: a random number that
 * the server's data keeps (P epoch) and loses with it. Attempt ids are
 * counted from 1 again after such a loss; a process still holding an id
 * from before must not end someone else's attempt with it, so an attempt
 * is named by its epoch and its number (journal_redis.c joins them in one
 * id). Every number a script passes to Redis stays below 10^14, where
 * Lua's tostring() writes it exactly (journal_redis.c bounds the window). */
#define PRELUDE \
    "local P, cap = ARGV[1], ARGV[2]\n" \
    "local epoch = redis.call('GET', P..'epoch')\n" \
    "if not epoch then\n" \
    "  epoch = ARGV[3]\n" \
    "  redis.call('SET', P..'epoch', epoch)\n" \
    "end\n" \
    "local function log(...)\n" \
    "  redis.call('XADD', P..'log', 'MAXLEN', '~', cap, '*', 'ep', epoch, ...)\n" \
    "end\n" \
    "local function keep(k, ttl)\n" \
    "  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end\n" \
    "end\n" \
    /* Attempt id (a: its key, owner, number n, and whether its lease
     * lapsed) ends with outcome o: it leaves the key's flights. An unknown
     * outcome is counted if it was still there (not forgotten, not already
     * counted); a real one that comes after its lease lapsed takes back
     * the unknown the lapse counted. A key state that expired meanwhile
     * (an attempt longer than its window) is not made again. */ \
    "local function ended(id, a, o, s, d)\n" \
    "  local kh = P..'k:'..a.key\n" \
    "  if a.key ~= '' and redis.call('EXISTS', kh) == 1 then\n" \
    "    local flying = redis.call('HDEL', kh, 'p:'..id) == 1\n" \
    "    if flying and o == 'unknown' then\n" \
    "      redis.call('HINCRBY', kh, 'u', 1)\n" \
    "    elseif not flying and a.lapsed and o ~= 'unknown' and o ~= 'pending'\n" \
    "           and a.n > tonumber(redis.call('HGET', kh, 'b') or '0')\n" \
    "           and tonumber(redis.call('HGET', kh, 'u') or '0') > 0 then\n" \
    "      redis.call('HINCRBY', kh, 'u', -1)\n" \
    "    end\n" \
    "    redis.call('HINCRBY', kh, 'v', 1)\n" \
    "  end\n" \
    "  if a.owner then redis.call('SREM', P..'pend:'..a.owner, id) end\n" \
    "  log('e', 'f', 'id', id, 'o', o, 's', s, 'd', d)\n" \
    "end\n"

/* ARGV: P, cap, epoch, owner, owner's pid, lease ms, expected key ("" for
 * none), its expected v ("new": no state and no answer at all), then the
 * ops (journal_redis.h; an op on an attempt names it by number and
 * epoch). Returns {id, attempt, epoch} per op ({0, 0, 0}: its attempt is
 * gone), or {-1} when the expected key is not as expected: nothing was
 * written. */
static const char apply_script[] = PRELUDE
    "local owner, opid, lease = ARGV[4], ARGV[5], tonumber(ARGV[6])\n"
    "if ARGV[7] ~= '' then\n"
    "  local v = redis.call('HGET', P..'k:'..ARGV[7], 'v')\n"
    "  if ARGV[8] == 'new' then\n"
    "    if v or redis.call('EXISTS', P..'a:'..ARGV[7]) == 1 then return {-1} end\n"
    "  elseif (v or '0') ~= ARGV[8] then\n"
    "    return {-1}\n"
    "  end\n"
    "end\n"
    "redis.call('SET', P..'owner:'..owner, opid, 'PX', lease)\n"
    "local function begin(i)\n"
    "  local t, pid, exe, m, h, path, key, fp, gen, tls, len, o, s, d, ttl =\n"
    "    unpack(ARGV, i, i + 14)\n"
    "  ttl = tonumber(ttl)\n"
    "  local id = redis.call('INCR', P..'id')\n"
    "  local n = 1\n"
    "  if key ~= '' then\n"
    "    local kh = P..'k:'..key\n"
    "    n = redis.call('HINCRBY', kh, 'n', 1)\n"
    "    redis.call('HSETNX', kh, 'f', t)\n"
    "    if o == 'pending' then redis.call('HSET', kh, 'p:'..id, owner..' '..pid) end\n"
    "    if o == 'unknown' then redis.call('HINCRBY', kh, 'u', 1) end\n"
    "    redis.call('HINCRBY', kh, 'v', 1)\n"
    "    keep(kh, ttl)\n"
    "  end\n"
    /* In flight for at least a day, however short the window: its
     * outcome must find it. */
    "  if o == 'pending' then\n"
    "    local ah = P..'att:'..id\n"
    "    redis.call('HSET', ah, 'k', key, 'n', n, 'w', ttl, 'o', owner, 'e', epoch)\n"
    "    redis.call('PEXPIRE', ah, math.max(ttl, 86400000))\n"
    "    redis.call('SADD', P..'pend:'..owner, id)\n"
    "    keep(P..'pend:'..owner, math.max(ttl, 86400000))\n"
    "  end\n"
    /* The window: a newer generation replaces the stored one; the same
     * one may only move its first attempt earlier. */
    "  if fp ~= '' then\n"
    "    local oh = P..'op:'..string.sub(fp, 1, 16)\n"
    "    local cur = redis.call('HMGET', oh, 'g', 't')\n"
    "    local g = tonumber(gen)\n"
    "    if not cur[1] or g > tonumber(cur[1]) then\n"
    "      redis.call('HSET', oh, 'g', gen, 't', t)\n"
    "    elseif g == tonumber(cur[1]) and tonumber(t) < tonumber(cur[2]) then\n"
    "      redis.call('HSET', oh, 't', t)\n"
    "    end\n"
    "  end\n"
    "  log('e', 'b', 'id', id, 't', t, 'pid', pid, 'w', owner, 'x', exe, 'm', m,\n"
    "      'h', h, 'p', path, 'k', key, 'f', fp, 'g', gen, 'n', n, 'tls', tls,\n"
    "      'len', len, 'o', o, 's', s, 'd', d)\n"
    "  return id, {key = key, n = n, ttl = ttl, owner = owner}\n"
    "end\n"
    /* Only the process that began an attempt ends it: an id it still
     * holds from before the server went back to a snapshot may have been
     * given since to another process's attempt. */
    "local function attempt_of(id, of_epoch)\n"
    "  local a = redis.call('HMGET', P..'att:'..id, 'k', 'n', 'w', 'o', 'e', 'l')\n"
    "  if not a[1] or a[5] ~= of_epoch or a[4] ~= owner then return nil end\n"
    "  return {key = a[1], n = tonumber(a[2]), ttl = tonumber(a[3]), owner = a[4],\n"
    "          lapsed = a[6] == '1'}\n"
    "end\n"
    /* The answer of attempt a is kept for its key, unless the key was
     * forgotten since or a newer attempt's is kept. */
    "local function keep_answer(a, s, big, bytes)\n"
    "  local kh, anh = P..'k:'..a.key, P..'a:'..a.key\n"
    "  local barrier = tonumber(redis.call('HGET', kh, 'b') or '0')\n"
    "  local kept = tonumber(redis.call('HGET', anh, 'n') or '0')\n"
    "  if a.n <= barrier or a.n <= kept then return end\n"
    "  redis.call('DEL', anh)\n"
    "  redis.call('HSET', anh, 'n', a.n, 's', s, 'big', big, 'b', bytes)\n"
    "  redis.call('PEXPIRE', anh, a.ttl)\n"
    "  redis.call('HINCRBY', kh, 'v', 1)\n"
    "  keep(kh, a.ttl)\n"   /* the key's state outlives its answer */
    "end\n"
    "local out, atts, i = {}, {}, 9\n"
    "while i <= #ARGV do\n"
    "  local kind, k = ARGV[i], #out + 1\n"
    "  if kind == 'B' then\n"
    "    local id, a = begin(i + 1)\n"
    "    out[k], atts[k] = {id, a.n, epoch}, a\n"
    "    i = i + 16\n"
    "  else\n"
    "    local id, ref = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])\n"
    "    local a = nil\n"
    "    if ref >= 0 then\n"
    "      id, a = out[ref + 1][1], atts[ref + 1]\n"
    "    elseif id > 0 then\n"
    "      a = attempt_of(id, ARGV[i + 3])\n"
    "    end\n"
    "    if not a or id == 0 then\n"
    "      out[k] = {0, 0, 0}\n"
    "    elseif kind == 'F' then\n"
    "      ended(id, a, ARGV[i + 4], ARGV[i + 5], ARGV[i + 6])\n"
    "      if ARGV[i + 4] ~= 'pending' then redis.call('DEL', P..'att:'..id) end\n"
    "      out[k] = {id, a.n, epoch}\n"
    "    else\n"
    "      if ARGV[i + 8] ~= '1' then\n"
    "        ended(id, a, 'completed', ARGV[i + 4], ARGV[i + 5])\n"
    "      end\n"
    "      if a.key ~= '' then keep_answer(a, ARGV[i + 4], ARGV[i + 6], ARGV[i + 7]) end\n"
    "      redis.call('DEL', P..'att:'..id)\n"
    "      out[k] = {id, a.n, epoch}\n"
    "    end\n"
    "    i = i + (kind == 'F' and 7 or 9)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ARGV: P, cap, epoch, key. What guard mode's rule needs of the key;
 * attempts in flight whose owner's lease is gone end as unknown first
 * (marked lapsed, should their real outcome come after all). Returns {v,
 * attempts, first_ms, in_flight, in_flight_pid, unknown, answered,
 * status, too_large, bytes}. */
static const char look_script[] = PRELUDE
    "local key = ARGV[4]\n"
    "local kh = P..'k:'..key\n"
    "local h = redis.call('HGETALL', kh)\n"
    "local st, flights = {}, {}\n"
    "for i = 1, #h, 2 do\n"
    "  if string.sub(h[i], 1, 2) == 'p:' then\n"
    "    flights[#flights + 1] = {string.sub(h[i], 3), h[i + 1]}\n"
    "  else\n"
    "    st[h[i]] = h[i + 1]\n"
    "  end\n"
    "end\n"
    "local n, b = tonumber(st.n or '0'), tonumber(st.b or '0')\n"
    "local live, live_pid = 0, 0\n"
    "for _, f in ipairs(flights) do\n"
    "  local owner, pid = string.match(f[2], '^(%S+) (%d+)$')\n"
    "  if owner and redis.call('EXISTS', P..'owner:'..owner) == 1 then\n"
    "    live, live_pid = live + 1, tonumber(pid)\n"
    "  else\n"
    "    local ah = P..'att:'..f[1]\n"
    "    if redis.call('EXISTS', ah) == 1 then redis.call('HSET', ah, 'l', '1') end\n"
    "    ended(f[1], {key = key, owner = owner}, 'unknown', 0, -1)\n"
    "  end\n"
    "end\n"
    "local a = redis.call('HMGET', P..'a:'..key, 's', 'big', 'b')\n"
    "return {redis.call('HGET', kh, 'v') or '0', n > b and n or 0, st.f or '0',\n"
    "        live, live_pid, tonumber(redis.call('HGET', kh, 'u') or '0'),\n"
    "        a[1] and 1 or 0, a[1] or '0', a[2] or '0', a[3] or ''}\n";

/* ARGV: P, cap, epoch, key. Returns {attempts, answers}. A key state made
 * here (its own expired, its answer not) expires with the answer. */
static const char forget_script[] = PRELUDE
    "local key = ARGV[4]\n"
    "local kh, anh = P..'k:'..key, P..'a:'..key\n"
    "local n = tonumber(redis.call('HGET', kh, 'n') or '0')\n"
    "local answers = redis.call('EXISTS', anh)\n"
    "if n > 0 or answers > 0 then\n"
    "  for _, f in ipairs(redis.call('HKEYS', kh)) do\n"
    "    if string.sub(f, 1, 2) == 'p:' then redis.call('HDEL', kh, f) end\n"
    "  end\n"
    "  local left = redis.call('PTTL', anh)\n"
    "  redis.call('HSET', kh, 'b', n, 'u', 0)\n"
    "  redis.call('HDEL', kh, 'f')\n"
    "  redis.call('HINCRBY', kh, 'v', 1)\n"
    "  redis.call('DEL', anh)\n"
    "  if redis.call('PTTL', kh) < 0 then\n"
    "    redis.call('PEXPIRE', kh, left > 0 and left or 86400000)\n"
    "  end\n"
    "end\n"
    "return {n, answers}\n";

/* ARGV: P, cap, epoch, owner, outcome. Every attempt of the owner still
 * in flight ends with outcome; its lease goes. Returns how many. */
static const char finish_owner_script[] = PRELUDE
    "local owner, o = ARGV[4], ARGV[5]\n"
    "local ids = redis.call('SMEMBERS', P..'pend:'..owner)\n"
    "for _, id in ipairs(ids) do\n"
    "  local key = redis.call('HGET', P..'att:'..id, 'k')\n"
    "  ended(id, {key = key or '', owner = owner}, o, 0, -1)\n"
    "  redis.call('DEL', P..'att:'..id)\n"
    "end\n"
    "redis.call('DEL', P..'pend:'..owner, P..'owner:'..owner)\n"
    "return #ids\n";

/* ARGV: P, cap, epoch, owner, pid, lease ms. Renews the owner's lease
 * while it has attempts in flight. Returns 1, or 0 when it has none. */
static const char keepalive_script[] = PRELUDE
    "local owner = ARGV[4]\n"
    "if redis.call('SCARD', P..'pend:'..owner) == 0 then return 0 end\n"
    "redis.call('SET', P..'owner:'..owner, ARGV[5], 'PX', tonumber(ARGV[6]))\n"
    "return 1\n";

/* ARGV: P, cap, epoch, name, proposal. The value stored under P name:
 * proposal if there was none (SET NX). For the secret and the schema
 * version. */
static const char set_once_script[] = PRELUDE
    "redis.call('SET', P..ARGV[4], ARGV[5], 'NX')\n"
    "return redis.call('GET', P..ARGV[4])\n";

const char *const redis_scripts[REDIS_SCRIPTS] = {
    [REDIS_APPLY] = apply_script,
    [REDIS_LOOK] = look_script,
    [REDIS_FORGET] = forget_script,
    [REDIS_FINISH_OWNER] = finish_owner_script,
    [REDIS_KEEPALIVE] = keepalive_script,
    [REDIS_SET_ONCE] = set_once_script,
};
