//! The Lua scripts, and the bounds they work within.

use redis::Script;

/// Allowances, costs and refunds above this are taken as this: Lua's
/// numbers are exact up to it.
pub(crate) const EXACT: u64 = 1 << 53;

/// The least `grace` (seconds): the authenticator's default leeway.
pub(crate) const MIN_GRACE: i64 = tollgate_core::DEFAULT_LEEWAY.as_secs() as i64;

/// The most `grace` (seconds, about 30 years).
pub(crate) const MAX_GRACE: i64 = 1 << 30;

/// The latest expiry handed to Redis (Unix seconds, about year 36,800):
/// exact in Lua, and far from `EXPIREAT`'s overflow.
pub(crate) const MAX_EXPIRY: i64 = 1 << 40;

/// Lua helpers in front of every script: `at(expiry, grace)` is the later
/// of `expiry` and Redis's now + `grace`; `keep(key, at)` makes the key live
/// at least until `at` (never shortening its life); `consume(counter,
/// allowance, cost, expiry, grace)` takes `cost` out of what is left and
/// returns `{1, left}` charged or `{2, left}` exhausted; `check(keys,
/// argv, k, a)` is [`CHECK`] on `keys[k+1..k+4]` and `argv[a+1..a+6]`.
pub(crate) const PRELUDE: &str = r"
local function at(expiry, grace)
  local now = tonumber(redis.call('TIME')[1])
  return math.max(tonumber(expiry), now + tonumber(grace))
end
local function keep(key, until_)
  if redis.call('EXPIRETIME', key) < until_ then redis.call('EXPIREAT', key, until_) end
end
local function consume(counter, allowance, cost, expiry, grace)
  local spent = redis.call('GET', counter)
  local left = tonumber(allowance) - tonumber(spent or '0')
  if left < 0 then left = 0 end
  if tonumber(cost) > left then return {2, left} end
  -- The integer as sent, never a Lua number.
  redis.call('INCRBY', counter, cost)
  if not spent then redis.call('EXPIREAT', counter, at(expiry, grace)) end
  return {1, left - tonumber(cost)}
end
local function check(keys, argv, k, a)
  if redis.call('EXISTS', keys[k + 1]) == 1 then return {-1, 0} end
  local iat = tonumber(argv[a + 1])
  for i = 2, 3 do
    local mark = redis.call('GET', keys[k + i])
    if mark and (iat == nil or iat <= tonumber(mark)) then return {-1, 0} end
  end
  if argv[a + 2] ~= '1' then return {0, 0} end
  return consume(keys[k + 4], argv[a + 3], argv[a + 4], argv[a + 5], argv[a + 6])
end
";

/// Revocation + watermarks + consumption, in one call.
///
/// KEYS: revoked marker, subject watermark, client watermark, counter.
/// ARGV: iat (or ""), consume? ("1"/"0"), allowance, cost, counter expiry
/// (Unix seconds), grace. Returns `{-1}` revoked, `{0}` admitted without a
/// consumption, `{1, left}` charged, `{2, left}` exhausted.
pub(crate) const CHECK: &str = r"
return check(KEYS, ARGV, 0, 0)
";

/// [`CHECK`] for many checks in one call, each in turn, with the same
/// answers as that many calls one after the other. ARGV[1]: grace; then
/// for each check KEYS revoked marker, subject watermark, client
/// watermark, counter, and ARGV consume? (`1`/`0`), iat (or ""),
/// allowance, cost, counter expiry.
/// Returns two numbers per check, as [`CHECK`]'s reply, in order.
///
/// Nothing else runs during a script, so each key is read once: a marker
/// or watermark read is kept, a counter is followed in Lua, and each
/// changed counter is written once at the end (`INCRBY` of its total, an
/// integer below 2^53 written without exponent; `EXPIREAT` if this call
/// created it). Checks of one token arriving together (a busy client's
/// token) cost Redis one read and one write.
pub(crate) const CHECK_MANY: &str = r"
local grace = ARGV[1]
local known, spent, added, born = {}, {}, {}, {}
local function get(key)
  local v = known[key]
  if v == nil then
    v = redis.call('GET', key) or false
    known[key] = v
  end
  return v
end
local function consume(counter, allowance, cost, expiry)
  local s = spent[counter]
  if s == nil then
    local v = redis.call('GET', counter)
    s = tonumber(v or '0')
    spent[counter] = s
    if not v then born[counter] = expiry end
  end
  local left = tonumber(allowance) - s
  if left < 0 then left = 0 end
  cost = tonumber(cost)
  if cost > left then return 2, left end
  spent[counter] = s + cost
  added[counter] = (added[counter] or 0) + cost
  return 1, left - cost
end
local function check(k, a)
  if get(KEYS[k + 1]) then return -1, 0 end
  local iat = tonumber(ARGV[a + 2])
  for i = 2, 3 do
    local mark = get(KEYS[k + i])
    if mark and (iat == nil or iat <= tonumber(mark)) then return -1, 0 end
  end
  if ARGV[a + 1] ~= '1' then return 0, 0 end
  return consume(KEYS[k + 4], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
end
local out, k, a = {}, 0, 1
while a < #ARGV do
  local code, left = check(k, a)
  k, a = k + 4, a + 5
  out[#out + 1] = code
  out[#out + 1] = left
end
for counter, n in pairs(added) do
  if n > 0 then
    redis.call('INCRBY', counter, string.format('%.0f', n))
    local expiry = born[counter]
    if expiry then
      local now = tonumber(redis.call('TIME')[1])
      redis.call('EXPIREAT', counter, math.max(tonumber(expiry), now + tonumber(grace)))
    end
  end
end
return out
";

/// The token's own part of [`CHECK`], for a Redis Cluster: its keys share
/// a hash tag, so one slot; the watermarks (other slots) are checked
/// before, by the replica or by reading them.
///
/// KEYS: revoked marker, counter, receipt. ARGV: consume? ("1"/"0"),
/// allowance, cost, counter expiry (Unix seconds), grace. Replies as
/// [`CHECK`]. ARGV[6]: how long a receipt is kept (seconds). A charge
/// leaves a receipt (kept as long as it may be resent): the same charge
/// sent again (its answer was lost) is answered from it, not charged twice.
pub(crate) const CHECK_TOKEN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1, 0} end
if ARGV[1] ~= '1' then return {0, 0} end
local seen = redis.call('GET', KEYS[3])
if seen then
  local left = string.match(seen, '^1:(%d+)$')
  if left then
    -- A write on this connection: a WAIT after it covers the charge too
    -- (replication is in order), whichever connection made the charge.
    redis.call('SET', KEYS[3], seen, 'KEEPTTL')
    return {1, tonumber(left)}
  end
end
local r = consume(KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
if r[1] == 1 then
  redis.call('SET', KEYS[3], string.format('1:%d', r[2]), 'EX', ARGV[6])
end
return r
";

/// Consumption without the revocation checks. KEYS: counter. ARGV:
/// allowance, cost, counter expiry, grace.
pub(crate) const CONSUME: &str = r"
return consume(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
";

/// Refund, never below zero. KEYS: counter. ARGV: allowance, amount.
/// Returns the credits left.
pub(crate) const REFUND: &str = r"
local spent = redis.call('GET', KEYS[1])
if not spent then return tonumber(ARGV[1]) end
local amount = tonumber(ARGV[2])
local rest = 0
if amount < tonumber(spent) then
  redis.call('DECRBY', KEYS[1], ARGV[2])
  rest = tonumber(spent) - amount
else
  redis.call('DECRBY', KEYS[1], spent)
end
local left = tonumber(ARGV[1]) - rest
if left < 0 then left = 0 end
return left
";

/// Revokes one token, never shortening an earlier revocation's life, and
/// tells every replica. KEYS: marker. ARGV: expiry (Unix seconds), grace,
/// channel.
pub(crate) const REVOKE: &str = r"
redis.call('SET', KEYS[1], '1', 'KEEPTTL')
keep(KEYS[1], at(ARGV[1], ARGV[2]))
redis.call('PUBLISH', ARGV[3], cjson.encode({KEYS[1], 1, redis.call('EXPIRETIME', KEYS[1])}))
return 1
";

/// Raises a watermark (never lowers it, nor shortens its life), and tells
/// every replica. KEYS: watermark. ARGV: before, expiry (Unix seconds),
/// grace, channel.
pub(crate) const WATERMARK: &str = r"
local cur = redis.call('GET', KEYS[1])
if (not cur) or tonumber(cur) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
end
keep(KEYS[1], at(ARGV[2], ARGV[3]))
local mark = tonumber(redis.call('GET', KEYS[1]))
redis.call('PUBLISH', ARGV[4], cjson.encode({KEYS[1], mark, redis.call('EXPIRETIME', KEYS[1])}))
return 1
";

/// Spends a refresh token if it is live. KEYS: the token. ARGV: now (Unix
/// seconds). Returns `{0}` unknown or ended, `{1, family, grant, exp}`
/// spent now (the caller keeps its successor), `{2, family, grant, exp}`
/// spent before (a reuse; nothing changed).
pub(crate) const SPEND_REFRESH: &str = r"
local v = redis.call('HMGET', KEYS[1], 'family', 'grant', 'exp', 'spent')
if not v[1] or tonumber(v[3]) < tonumber(ARGV[1]) then return {0} end
if v[4] == '1' then return {2, v[1], v[2], v[3]} end
redis.call('HSET', KEYS[1], 'spent', '1')
return {1, v[1], v[2], v[3]}
";

/// A script with the [`PRELUDE`] helpers in front.
pub(crate) fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}
