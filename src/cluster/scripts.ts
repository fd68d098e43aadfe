// The Lua scripts behind a replica's keys in Redis (cluster.ts): its heartbeat, and the owner keys of
// single-owner backends, each read and written in one atomic step.

/** The heartbeat: set when free or ours; the current holder's epoch otherwise. */
export const CLAIM_ALIVE = `
local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return held`;

/**
 * The heartbeat (as CLAIM_ALIVE), and while it is ours a look at the owner keys this replica holds
 * (KEYS[3..]): one naming another replica was taken over (returned, after the heartbeat's holder, and
 * dropped from this replica's set); one gone (Redis lost its data) is claimed again, since this
 * replica still runs its backend.
 */
export const HEARTBEAT = `
local held = redis.call('GET', KEYS[1])
if held ~= false and held ~= ARGV[1] then
  return {held}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local answer = {ARGV[1]}
for i = 3, #KEYS do
  local owner = redis.call('GET', KEYS[i])
  if owner == false then
    redis.call('SET', KEYS[i], ARGV[3], 'EX', ARGV[4])
    redis.call('SADD', KEYS[2], KEYS[i])
  elseif owner ~= ARGV[3] then
    redis.call('SREM', KEYS[2], KEYS[i])
    table.insert(answer, KEYS[i])
  end
end
return answer`;

/**
 * An owner key: free or ours → ours; held by a replica whose heartbeat is gone or shows another epoch
 * → ours (compare-and-set); held by a live replica → that replica's `replica:epoch`.
 */
export const CLAIM_OWNER = `
local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
  redis.call('SADD', KEYS[2], KEYS[1])
  return ARGV[1]
end
local sep = string.find(held, ':', 1, true)
local replica = string.sub(held, 1, sep - 1)
local epoch = string.sub(held, sep + 1)
if redis.call('GET', ARGV[2] .. replica) ~= epoch then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
  redis.call('SADD', KEYS[2], KEYS[1])
  return ARGV[1]
end
return held`;

/** Deletes an owner key only while it names this replica and epoch. */
export const RELEASE_OWNER = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
redis.call('SREM', KEYS[2], KEYS[1])
return 1`;
