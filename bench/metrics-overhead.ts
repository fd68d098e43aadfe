// What metrics cost one request in the gateway's own code, apart from the noise of a loaded machine:
// the events a request publishes (observe/events.ts: admission watched, answer settled) with no
// subscriber, as a gateway without `admin` runs, and with the metrics and the admin page's activity
// subscribed, as with `admin`. CPU time per request, median of alternating rounds.
// Usage: node bench/metrics-overhead.ts [--requests 200000] [--rounds 7]

import { parseArgs } from 'node:util';
import { Activity } from '../src/observe/activity.ts';
import { publishRequestSettled, watchRequest } from '../src/observe/events.ts';
import { Metrics } from '../src/observe/metrics.ts';
import type { JsonRpcRequest, JsonRpcResponse } from '../src/protocol/jsonrpc.ts';

const { values } = parseArgs({
  options: { requests: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '7' } },
});
const requests = Number(values.requests);
const rounds = Number(values.rounds);
const owner = Symbol('bench gateway');
const session = {
  id: 'session',
  server: 'bench',
  identity: { user: 'alice', groups: [], method: 'api-key', credential: 'key:1' },
};
const request: JsonRpcRequest = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } };
const response: JsonRpcResponse = { jsonrpc: '2.0', id: 1, result: { content: [] } };

/** CPU microseconds per request of the publish path, as Session runs it for every request. */
function round(): number {
  const before = process.cpuUsage();
  for (let i = 0; i < requests; i++) {
    const watch = watchRequest(request);
    if (watch) publishRequestSettled(owner, session, watch, response, 'response');
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / requests;
}

function subscribed(): () => void {
  const metrics = new Metrics(owner, ['bench'], {
    servers: () => ({}),
    sessions: () => ({ sessions: 0, inFlight: 0, draining: false, byServer: {}, byUser: {} }),
    backends: () => [],
    appSockets: undefined,
  });
  const activity = new Activity(owner);
  return () => {
    metrics.close();
    activity.close();
  };
}

const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)] ?? Number.NaN;
const off: number[] = [];
const on: number[] = [];
round(); // warm-up, both paths
const warm = subscribed();
round();
warm();
for (let i = 0; i < rounds; i++) {
  off.push(round());
  const close = subscribed();
  on.push(round());
  close();
}
const [a, b] = [median(off), median(on)];
process.stdout.write(
  [
    `requests per round: ${requests}, rounds: ${rounds}`,
    `no subscriber (no admin section): ${(a * 1000).toFixed(0)} ns of CPU per request`,
    `metrics + activity subscribed:    ${(b * 1000).toFixed(0)} ns of CPU per request`,
    `added by metrics:                 ${((b - a) * 1000).toFixed(0)} ns per request`,
    '',
  ].join('\n'),
);
