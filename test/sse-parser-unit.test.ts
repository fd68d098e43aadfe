// The connect bridge's SSE decoder: linear work however a large event is chunked, and the line rules
// (CR, LF, CRLF split across chunks, BOM, unfinished final event), and the bound on an event's data.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSse, type SseEvent, SseParser } from '../src/connect/sse.ts';

function feed(parser: SseParser, text: string, size: number): SseEvent[] {
  const events: SseEvent[] = [];
  for (let at = 0; at < text.length; at += size) events.push(...parser.push(text.slice(at, at + size)));
  parser.end();
  return events;
}

describe('SseParser', () => {
  for (const [bytes, size] of [
    [1_048_576, 1],
    [10_485_760, 7],
    [10_485_760, 1_024],
    [10_485_760, 65_536],
  ] as const) {
    it(`scans and copies a ${bytes}-byte event in ${size}-byte chunks in work proportional to its size`, () => {
      const body = `id: 7\ndata: ${'x'.repeat(bytes)}\n\n`;
      const parser = new SseParser();
      const events = feed(parser, body, size);
      assert.equal(events.length, 1);
      assert.equal(events[0]?.data.length, bytes);
      assert.equal(events[0]?.id, '7');
      // Each character looked at once, copied at most twice: the quadratic decoder rescanned the
      // whole pending line for every chunk (≈ bytes² / 2·size characters).
      assert.ok(parser.scanned <= body.length, `scanned ${parser.scanned} of ${body.length}`);
      assert.ok(parser.copied <= 2 * body.length, `copied ${parser.copied} of ${body.length}`);
    });
  }

  it('keeps the line rules: CRLF split across chunks, lone CR, BOM, comments, unfinished last event', async () => {
    const body =
      '\ufeffid: 1\r\ndata: a\r\n\r\n: keep-alive\n\ndata: b\rdata: c\r\revent: x\ndata: d\n\ndata: lost';
    for (const size of [1, 2, 3, 5, body.length]) {
      const chunks: string[] = [];
      for (let at = 0; at < body.length; at += size) chunks.push(body.slice(at, at + size));
      const events: SseEvent[] = [];
      for await (const event of parseSse(
        (async function* () {
          yield* chunks;
        })(),
      ))
        events.push(event);
      assert.deepEqual(
        events.map((event) => [event.id, event.event, event.data]),
        [
          ['1', 'message', 'a'],
          [undefined, 'message', 'b\nc'],
          [undefined, 'x', 'd'],
        ],
        `chunks of ${size}`,
      );
    }
  });

  it('fails a stream whose event grows past 64 MiB of data lines without its blank line, and counts per event', async () => {
    const line = `data: ${'x'.repeat(1_048_576)}\n`;
    // Three events of 48 MiB each pass: the count starts again at each blank line.
    let events = 0;
    for await (const event of parseSse(
      (async function* () {
        for (let n = 0; n < 3; n++) {
          for (let lines = 0; lines < 48; lines++) yield line;
          yield '\n';
        }
      })(),
    )) {
      assert.equal(event.data.length, 48 * 1_048_576 + 47);
      events++;
    }
    assert.equal(events, 3);
    // Endless data lines of one event: refused once past the bound, not held until memory runs out.
    let sent = 0;
    await assert.rejects(
      (async () => {
        for await (const _event of parseSse(
          (async function* () {
            // 80 MiB (an unbounded parser takes it all, then drops the unfinished event at the end).
            for (; sent < 80; sent++) yield line;
          })(),
        ));
      })(),
      /SSE event data longer than 64 MiB/,
    );
    assert.equal(
      sent,
      63,
      'refused at the 64th line (sent counts those before it), the one that crossed the bound',
    );
  });
});
