//! The Lua scripts that make every budget operation atomic on the Redis server.
//!
//! A budget is one hash:
//!
//! | field     | meaning                                                          |
//! |-----------|------------------------------------------------------------------|
//! | `gen`     | incarnation (server microseconds at creation)                    |
//! | `limit`   | backend `remaining` at the last refresh + `acked_before`          |
//! | `spent`   | units acknowledged by the backend, from every instance           |
//! | `out`     | units leased to instances and not yet acknowledged (sum of `o:*`) |
//! | `o:<id>`  | units leased to instance session `<id>`, not yet acknowledged     |
//! | `c:<id>`  | that session's last call: token, units it settled, units granted  |
//! | `fresh`   | server milliseconds until which the limit is fresh               |
//! | `failed`  | server milliseconds until which a failed refresh backs off       |
//! | `info`    | the backend's last answer as JSON, for 402 bodies                |
//!
//! A lease is granted while `spent + out + need <= limit`. Live instance sessions are
//! the members of a sorted set scored by their expiry; a refresh forgets the leases of
//! sessions that expired (the instance stopped, or lost Redis for longer than the
//! instance TTL, in which case it voids those leases itself).
//!
//! On a Redis Cluster every key a script touches shares the budget's hash tag, so each
//! script runs on the one shard that holds the budget: the session set is the budget's
//! own (renewed by every lease and settlement of that budget, instead of a heartbeat),
//! and a refresh that forgets an expired session's lease leaves a tombstone `x:<id>` in
//! the budget, so that the instance learns, at its next call on that budget, that its
//! leases there were void (what a re-added member of the global set tells on one
//! server).

use redis::Script;

/// Shared prelude: the server clock in milliseconds, and the settlement of what the
/// caller owes (acknowledged units and units given back).
///
/// A call whose answer was lost (a timeout) may have run. Its caller sends the same
/// acknowledgements and given-back units again with its next call on the budget, with
/// the tokens of the calls it lost; each call leaves its token, what it settled and
/// what it granted in `c:<session>`. When that record is one of the lost calls, it ran:
/// what it settled is not counted twice, and what it granted (units the caller never
/// learned of) comes back.
const PRELUDE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function fmt(n) return string.format('%.0f', n) end
local call = {id = '', acks = 0, back = 0}
local function settle(key, me, acks, back, token, lost)
  call = {id = token, acks = acks, back = back}
  local last = redis.call('HGET', key, 'c:' .. me)
  if last and lost ~= '' then
    local id, a, b, g = string.match(last, '^(%w+)|(%d+)|(%d+)|(%d+)$')
    if id and string.find(',' .. lost .. ',', ',' .. id .. ',', 1, true) then
      acks = math.max(0, acks - tonumber(a))
      back = math.max(0, back - tonumber(b)) + tonumber(g)
    end
  end
  local field = 'o:' .. me
  local mine = tonumber(redis.call('HGET', key, field) or '0')
  local dec = math.min(mine, acks + back)
  mine = mine - dec
  if acks > 0 then redis.call('HINCRBY', key, 'spent', fmt(acks)) end
  if dec > 0 then redis.call('HINCRBY', key, 'out', fmt(-dec)) end
  return mine
end
local function keep(key, me, mine, grant)
  if mine > 0 then
    redis.call('HSET', key, 'o:' .. me, fmt(mine))
  else
    redis.call('HDEL', key, 'o:' .. me)
  end
  redis.call('HSET', key, 'c:' .. me,
    call.id .. '|' .. fmt(call.acks) .. '|' .. fmt(call.back) .. '|' .. fmt(grant or 0))
end
"#;

/// KEYS: budget, lock, sessions.
/// ARGV: me, need, want, acks, give_back, stale_ok, session_ttl_ms, lock_ttl_ms,
/// key_ttl_ms, token, lost (tokens, comma-separated). `need` 0 is a prefetch: it is granted from a fresh budget only.
/// Returns {kind, n, gen, joined, locked, info}.
const LEASE: &str = r#"
local me = ARGV[1]
local need = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local joined = redis.call('ZADD', KEYS[3], fmt(now + tonumber(ARGV[7])), me)
local gen = redis.call('HGET', KEYS[1], 'gen')
if not gen then
  -- A prefetch (need 0) never takes the lock: the request that needs units refreshes.
  local locked = need > 0 and redis.call('SET', KEYS[2], ARGV[10] .. ':0', 'NX', 'PX', ARGV[8])
  return {'refresh', 0, '0', joined, locked and 1 or 0, ''}
end
local mine = settle(KEYS[1], me, tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[10], ARGV[11])
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local fresh = tonumber(redis.call('HGET', KEYS[1], 'fresh') or '0')
if fresh <= now and ARGV[6] ~= '1' then
  if need == 0 then
    keep(KEYS[1], me, mine)
    return {'refresh', spent, gen, joined, 0, ''}
  end
  if redis.call('SET', KEYS[2], ARGV[10] .. ':' .. gen, 'NX', 'PX', ARGV[8]) then
    keep(KEYS[1], me, mine)
    return {'refresh', spent, gen, joined, 1, ''}
  end
  local failed = tonumber(redis.call('HGET', KEYS[1], 'failed') or '0')
  if failed > now then
    keep(KEYS[1], me, mine)
    return {'unavailable', failed - now, gen, joined, 0, ''}
  end
  -- Another instance is refreshing right now: grant from what is known.
end
local limit = tonumber(redis.call('HGET', KEYS[1], 'limit') or '0')
local out = tonumber(redis.call('HGET', KEYS[1], 'out') or '0')
local avail = limit - spent - out
redis.call('PEXPIRE', KEYS[1], ARGV[9])
if avail < need then
  keep(KEYS[1], me, mine)
  return {'exhausted', math.max(avail, 0), gen, joined, 0, redis.call('HGET', KEYS[1], 'info') or ''}
end
local extra = math.max(0, math.min(want - need, math.floor((avail - need) / 4)))
local grant = need + extra
redis.call('HINCRBY', KEYS[1], 'out', fmt(grant))
keep(KEYS[1], me, mine + grant, grant)
return {'granted', grant, gen, joined, 0, ''}
"#;

/// KEYS: budget, lock, sessions.
/// ARGV: token, locked, acked_before, allowed, info, ttl_ms, key_ttl_ms.
/// Returns 1 when installed, 0 when another refresh won. The lock's value is the
/// token and the generation the lease saw (`<token>:<gen>`, `0`: no budget): a lock
/// holder whose budget was created or recreated meanwhile installs nothing, since its
/// `acked_before` was read from another incarnation (the budget just created by a
/// refresh without the lock, whose units may be counted by the backend already).
const INSTALL: &str = r#"
local exists = redis.call('EXISTS', KEYS[1]) == 1
local owns = ARGV[2] == '1' and redis.call('GET', KEYS[2]) == ARGV[1]
local seen = string.match(ARGV[1], ':(%d+)$')
local holds = owns and (redis.call('HGET', KEYS[1], 'gen') or '0') == seen
if owns and not holds then redis.call('DEL', KEYS[2]) end
if exists and not holds then return 0 end
if exists then
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(field, 1, 2) == 'o:' then
      local expiry = redis.call('ZSCORE', KEYS[3], string.sub(field, 3))
      if (not expiry) or tonumber(expiry) < now then
        local units = tonumber(redis.call('HGET', KEYS[1], field) or '0')
        redis.call('HINCRBY', KEYS[1], 'out', fmt(-units))
        redis.call('HDEL', KEYS[1], field)
      end
    elseif string.sub(field, 1, 2) == 'c:' then
      local expiry = redis.call('ZSCORE', KEYS[3], string.sub(field, 3))
      if (not expiry) or tonumber(expiry) < now then redis.call('HDEL', KEYS[1], field) end
    end
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. fmt(now))
else
  redis.call('HSET', KEYS[1], 'gen', fmt(tonumber(t[1]) * 1000000 + tonumber(t[2])), 'spent', '0', 'out', '0')
end
redis.call('HSET', KEYS[1],
  'limit', fmt(tonumber(ARGV[4]) + tonumber(ARGV[3])),
  'fresh', fmt(now + tonumber(ARGV[6])),
  'info', ARGV[5])
redis.call('HDEL', KEYS[1], 'failed')
redis.call('PEXPIRE', KEYS[1], ARGV[7])
if holds then redis.call('DEL', KEYS[2]) end
return 1
"#;

/// KEYS: budget, lock. ARGV: token, locked, retry_ms.
const REFRESH_FAILED: &str = r#"
if ARGV[2] == '1' and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HSET', KEYS[1], 'failed', fmt(now + tonumber(ARGV[3])))
  end
end
return 1
"#;

/// KEYS: budget, sessions. ARGV: me, acks, give_back, session_ttl_ms, token, lost.
/// Returns whether the session was (re)added.
const SETTLE: &str = r#"
local joined = redis.call('ZADD', KEYS[2], fmt(now + tonumber(ARGV[4])), ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  keep(KEYS[1], ARGV[1], settle(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[5], ARGV[6]))
end
return joined
"#;

/// KEYS: sessions. ARGV: me, session_ttl_ms. Returns whether the session was (re)added.
const HEARTBEAT: &str = r#"
return redis.call('ZADD', KEYS[1], fmt(now + tonumber(ARGV[2])), ARGV[1])
"#;

/// KEYS: budget.
const MARK_STALE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'fresh', '0')
end
return 1
"#;

/// The scripts, hashed once.
pub(crate) struct Scripts {
    pub(crate) lease: Script,
    pub(crate) install: Script,
    pub(crate) refresh_failed: Script,
    pub(crate) settle: Script,
    pub(crate) heartbeat: Script,
    pub(crate) mark_stale: Script,
}

/// On a cluster: the session set is per budget; "joined" is a tombstone found.
const CLUSTER_LEASE_JOIN: (&str, &str) = (
    "local joined = redis.call('ZADD', KEYS[3], fmt(now + tonumber(ARGV[7])), me)",
    "redis.call('ZADD', KEYS[3], fmt(now + tonumber(ARGV[7])), me)\n\
     redis.call('PEXPIRE', KEYS[3], ARGV[9])\n\
     local joined = redis.call('HDEL', KEYS[1], 'x:' .. me)",
);
const CLUSTER_SETTLE_JOIN: (&str, &str) = (
    "local joined = redis.call('ZADD', KEYS[2], fmt(now + tonumber(ARGV[4])), ARGV[1])",
    "redis.call('ZADD', KEYS[2], fmt(now + tonumber(ARGV[4])), ARGV[1])\n\
     local joined = redis.call('HDEL', KEYS[1], 'x:' .. ARGV[1])",
);
const CLUSTER_INSTALL_FORGET: (&str, &str) = (
    "        redis.call('HDEL', KEYS[1], field)\n",
    "        redis.call('HDEL', KEYS[1], field)\n        redis.call('HSET', KEYS[1], 'x:' .. string.sub(field, 3), '1')\n",
);

impl Scripts {
    /// The scripts for one server, or for a Redis Cluster (`cluster`).
    pub(crate) fn new(cluster: bool) -> Self {
        let variant = |body: &str, change: (&str, &str)| {
            if cluster {
                debug_assert!(body.contains(change.0), "the cluster variant applies");
                body.replacen(change.0, change.1, 1)
            } else {
                body.to_owned()
            }
        };
        let with_prelude = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            lease: with_prelude(&variant(LEASE, CLUSTER_LEASE_JOIN)),
            install: with_prelude(&variant(INSTALL, CLUSTER_INSTALL_FORGET)),
            refresh_failed: with_prelude(REFRESH_FAILED),
            settle: with_prelude(&variant(SETTLE, CLUSTER_SETTLE_JOIN)),
            heartbeat: with_prelude(HEARTBEAT),
            mark_stale: with_prelude(MARK_STALE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cluster_variant_changes_its_script() {
        for (body, change) in [
            (LEASE, CLUSTER_LEASE_JOIN),
            (SETTLE, CLUSTER_SETTLE_JOIN),
            (INSTALL, CLUSTER_INSTALL_FORGET),
        ] {
            assert_eq!(body.matches(change.0).count(), 1, "{}", change.0);
        }
        assert_ne!(
            Scripts::new(true).lease.get_hash(),
            Scripts::new(false).lease.get_hash()
        );
    }
}
