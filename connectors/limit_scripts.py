"""The Lua scripts of the rate-limit buckets in Redis (``connectors.shared_limits``).

Redis runs each script atomically, on its own clock (``TIME``): every process and host sees
one bucket per platform account, changed only here.
"""

from __future__ import annotations

from connectors.http import DEFAULT_TIMEOUT

PREFIX = "hub:limits"
KEY_TTL_MS = 3_600_000  # an account nobody called for an hour starts from a full bucket again
# Seconds: a reservation unanswered this long belongs to a process that died mid-request (its
# client would have given up by then). Until then its points stay held for every process, so
# a resumed run waits at most this long for a shop whose process was killed.
IN_FLIGHT_TTL = (DEFAULT_TIMEOUT.connect or 0.0) + (DEFAULT_TIMEOUT.read or 0.0)
# A query waiting this long for points held by unanswered queries says so (the run shows it).
HELD_SHOWN_AFTER = 1.0
# While only an answer to a query in flight (maybe another process's) can make room, or
# another process's query is first in line: ask again after this long.
POLL = 0.02
MAX_SLEEP = 0.5  # a waiter asks at least this often, so that the queue knows it is alive
WAITER_TTL = 3.0  # seconds: a waiter silent this long died; the next one goes first
FREEZE_TTL = 30.0  # seconds: see TOKENS

# Redis's clock in seconds, less an epoch, so that Lua's doubles (printed with 14 digits)
# keep microseconds.
_CLOCK = """
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1700000000) + tonumber(t[2]) / 1e6
"""

_HELD = """
local function held_points()
  local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[#ARGV]))
  for _, ticket in ipairs(stale) do
    redis.call('ZREM', KEYS[2], ticket)
    redis.call('HDEL', KEYS[3], ticket)
  end
  local held = 0
  for _, points in ipairs(redis.call('HVALS', KEYS[3])) do held = held + tonumber(points) end
  return held
end
local function touch()
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], KEY_TTL_MS) end
end
""".replace("KEY_TTL_MS", str(KEY_TTL_MS))

# KEYS: state, in-flight (ticket -> sent), points (ticket -> points), settled ("t:kept" -> at),
# queue (ticket -> place), seen (ticket -> last asked). ARGV: cost, ticket, default maximum,
# default restore rate, seconds ahead, in-flight ttl.
# Queries take turns across processes (the queue), as they do within one: otherwise a large
# query waiting for room would starve while other processes' small ones keep taking it. A
# query's place is its arrival less its "seconds ahead" (``connectors.ratelimit.Place``: how
# long it has waited in its process, plus an urgent query's head start), so an urgent query
# of one process goes ahead of the sync pages of all.
RESERVE = (
    _CLOCK
    + _HELD
    + """
for _, waiter in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
  local seen = tonumber(redis.call('HGET', KEYS[6], waiter) or '0')
  if seen < now - WAITER_TTL then
    redis.call('ZREM', KEYS[5], waiter)
    redis.call('HDEL', KEYS[6], waiter)
  end
end
redis.call('ZADD', KEYS[5], 'NX', now - tonumber(ARGV[5]), ARGV[2])
redis.call('HSET', KEYS[6], ARGV[2], tostring(now))
touch()
if redis.call('ZRANGE', KEYS[5], 0, 0)[1] ~= ARGV[2] then return {'wait', '-1'} end
local s = redis.call('HMGET', KEYS[1], 'available', 'updated', 'maximum', 'rate')
local maximum = tonumber(s[3]) or tonumber(ARGV[3])
local rate = tonumber(s[4]) or tonumber(ARGV[4])
local available = tonumber(s[1]) or maximum
local updated = tonumber(s[2]) or now
local top = maximum - held_points()
local estimate = math.min(top, available + (now - updated) * rate)
local cost = math.min(tonumber(ARGV[1]), maximum)
local missing = cost - estimate
if missing > 1e-3 then
  if cost > top + 1e-3 then
    -- Only answers to queries in flight make room: when the oldest is let go at the latest.
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    local sent = tonumber(oldest[2] or tostring(now))
    return {'held', tostring(sent + tonumber(ARGV[#ARGV]) - now)}
  end
  return {'wait', tostring(missing / rate)}
end
redis.call('HSET', KEYS[1], 'available', tostring(estimate - cost), 'updated', tostring(now),
            'maximum', tostring(maximum), 'rate', tostring(rate))
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], tostring(cost))
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('HDEL', KEYS[6], ARGV[2])
return {'ok', tostring(cost)}
""".replace("WAITER_TTL", str(WAITER_TTL))
)

# ARGV: ticket, has status (0/1), kept points, reported available, maximum, restore rate, ttl
SETTLE = (
    _CLOCK
    + _HELD
    + """
local s = redis.call('HMGET', KEYS[1], 'available', 'updated', 'maximum', 'rate')
if not s[2] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  return 0
end
local maximum, rate = tonumber(s[3]), tonumber(s[4])
local held = held_points()
local own = math.min(maximum - held, tonumber(s[1]) + (now - tonumber(s[2])) * rate)
local points = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
local sent = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]) or tostring(now))
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
local available = own
if ARGV[2] == '1' then
  local kept = tonumber(ARGV[3])
  own = own + points - kept
  maximum, rate = tonumber(ARGV[5]), tonumber(ARGV[6])
  local reported = tonumber(ARGV[4])
  -- The snapshot was taken while this query ran: the queries of every process still in
  -- flight, and those answered since this one was sent, may be charged after it.
  local later = held - points
  for _, entry in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. sent, '+inf')) do
    later = later + tonumber(string.match(entry, ':(.*)$'))
  end
  local highest = math.min(maximum, reported + (now - sent) * rate)
  available = math.min(math.max(own, reported - later), highest)
  redis.call('ZADD', KEYS[4], now, ARGV[1] .. ':' .. ARGV[3])
end
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local horizon = oldest[2] and tonumber(oldest[2]) or now
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. tostring(horizon))
redis.call('HSET', KEYS[1], 'available', tostring(available), 'updated', tostring(now),
            'maximum', tostring(maximum), 'rate', tostring(rate))
touch()
return 1
"""
)

# A waiter gives up its place (cancelled). KEYS: queue, seen. ARGV: ticket.
LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

# The SP-API token bucket. KEYS: state. ARGV: action, default rate, burst, then per action.
# A token taken from a full bucket freezes the refill until its call is answered: Amazon's
# bucket stays full (its refill overflowing) until the call arrives, which under load or
# after a slow connection is long after we took the token, and other processes would spend
# that refill in the meantime (a 429). Frozen at most FREEZE_TTL (an answer that never came).
# 'spend' takes a token without freezing: for a limit we enforce ourselves (the Hub API's
# per-key limit), where the request counts the moment it is let through.
TOKENS = (
    _CLOCK
    + """
local s = redis.call('HMGET', KEYS[1], 'tokens', 'updated', 'rate', 'taken', 'frozen', 'frozen_at')
local burst = tonumber(ARGV[3])
local rate = tonumber(s[3]) or tonumber(ARGV[2])
local tokens = tonumber(s[1]) or burst
local taken = tonumber(s[4]) or 0
local frozen = tonumber(s[5] or '0')
if frozen > 0 and now - tonumber(s[6]) > FREEZE_TTL then frozen = 0 end
if s[2] and frozen == 0 then tokens = math.min(burst, tokens + (now - tonumber(s[2])) * rate) end
local frozen_at = s[6] or '0'
local action = ARGV[1]
local answer = {'ok', '0', '0', '0'}
local function wait_time()
  if tokens >= 1 then return 0 end
  if frozen > 0 then return FREEZE_POLL end
  return (1 - tokens) / rate
end
if action == 'take' then
  if tokens >= 1 then
    taken = taken + 1
    local full = tokens >= burst and '1' or '0'
    if full == '1' then frozen, frozen_at = taken, tostring(now) end
    tokens = tokens - 1
    answer = {'ok', tostring(now), tostring(taken), full}
  else
    answer = {'wait', tostring(wait_time()), '0', '0'}
  end
elseif action == 'spend' then
  if tokens >= 1 then
    tokens = tokens - 1
  else
    answer = {'wait', tostring(wait_time()), '0', '0'}
  end
elseif action == 'wait' then
  answer = {'ok', tostring(wait_time()), '0', '0'}
elseif action == 'arrived' then
  if frozen == tonumber(ARGV[5]) then frozen = 0 end
elseif action == 'refused' then
  tokens = math.min(tokens, 0)
  rate = rate * tonumber(ARGV[4])
elseif action == 'rate' then
  local told = tonumber(ARGV[4])
  if told > 0 then rate = told end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now),
           'rate', tostring(rate), 'taken', tostring(taken), 'frozen', tostring(frozen),
           'frozen_at', frozen_at)
redis.call('PEXPIRE', KEYS[1], KEY_TTL_MS)
answer[5] = tostring(rate)
return answer
""".replace("KEY_TTL_MS", str(KEY_TTL_MS))
    .replace("FREEZE_TTL", str(FREEZE_TTL))
    .replace("FREEZE_POLL", str(POLL))
)
