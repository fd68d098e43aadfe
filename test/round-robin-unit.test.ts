import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { roundRobin } from '../src/util/round-robin.ts';

describe('roundRobin', () => {
  it('takes the first of each list, then the second of each, each item once', () => {
    assert.deepEqual(roundRobin([['a1', 'a2', 'a3'], ['b1'], [], ['c1', 'a1', 'c2']]), [
      'a1',
      'b1',
      'c1',
      'a2',
      'a3',
      'c2',
    ]);
  });

  it('gives nothing for no lists', () => {
    assert.deepEqual(roundRobin([]), []);
    assert.deepEqual(roundRobin([[], []]), []);
  });
});
