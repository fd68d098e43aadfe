// The zip writer behind `claude bundle`, read back by the zip format's own fields (bundle.test.ts unpacks
// real bundles with the official tool), and the bundle's refusals of what it cannot carry.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { crc32, inflateRawSync } from 'node:zlib';
import { bridgeBundle } from '../src/claude/bundle.ts';
import { RelayError } from '../src/errors.ts';
import { zipArchive } from '../src/util/zip.ts';

/** The entries of an archive, found through its central directory as unzip finds them. */
function readZip(archive: Buffer): { path: string; data: Buffer; mode: number; deflated: boolean }[] {
  const end = archive.length - 22;
  assert.equal(archive.readUInt32LE(end), 0x06054b50, 'end of central directory');
  const count = archive.readUInt16LE(end + 10);
  let at = archive.readUInt32LE(end + 16);
  const entries = [];
  for (let i = 0; i < count; i++) {
    assert.equal(archive.readUInt32LE(at), 0x02014b50, 'central header');
    const method = archive.readUInt16LE(at + 10);
    const crc = archive.readUInt32LE(at + 16);
    const compressed = archive.readUInt32LE(at + 20);
    const nameLength = archive.readUInt16LE(at + 28);
    const mode = archive.readUInt32LE(at + 38) >>> 16;
    const local = archive.readUInt32LE(at + 42);
    const path = archive.toString('utf8', at + 46, at + 46 + nameLength);
    assert.equal(archive.readUInt32LE(local), 0x04034b50, 'local header');
    const bodyAt = local + 30 + archive.readUInt16LE(local + 26) + archive.readUInt16LE(local + 28);
    const body = archive.subarray(bodyAt, bodyAt + compressed);
    const data = method === 8 ? inflateRawSync(body) : Buffer.from(body);
    assert.equal(crc32(data), crc, `${path}: crc`);
    entries.push({ path, data, mode, deflated: method === 8 });
    at += 46 + nameLength;
  }
  return entries;
}

describe('zipArchive', () => {
  it('writes entries that read back byte for byte with their modes, deflating only what shrinks', () => {
    const text = Buffer.from('export const x = 1;\n'.repeat(200));
    const noise = randomBytes(4096);
    const archive = zipArchive([
      { path: 'bin/mcp-relay.js', data: text, mode: 0o755 },
      { path: 'node_modules/ü/noise.bin', data: noise },
      { path: 'empty', data: Buffer.alloc(0) },
    ]);
    assert.deepEqual(readZip(archive), [
      { path: 'bin/mcp-relay.js', data: text, mode: 0o100755, deflated: true },
      // Deflate would grow random bytes: stored as they are.
      { path: 'node_modules/ü/noise.bin', data: noise, mode: 0o100644, deflated: false },
      { path: 'empty', data: Buffer.alloc(0), mode: 0o100644, deflated: false },
    ]);
    assert.ok(archive.length < noise.length + text.length / 10, 'the text shrank');
  });

  it('refuses names that could land outside the folder it is unpacked into', () => {
    for (const path of ['../x', 'a/../../x', '/etc/passwd', 'a\\b', 'a//b', '', './x'])
      assert.throws(
        () => zipArchive([{ path, data: Buffer.from('x') }]),
        /not a relative archive path/,
        path,
      );
  });
});

describe('bridgeBundle refusals', () => {
  const usage = (pattern: RegExp) => (error: unknown) =>
    error instanceof RelayError && error.code === 'USAGE' && pattern.test(error.message);

  it('refuses a URL with credentials or another scheme, a bad name, and a CA file without a certificate', () => {
    assert.throws(
      () => bridgeBundle({ url: 'https://u:p@mcp.example.com/mcp/3d', name: '3d' }),
      usage(/credentials/),
    );
    assert.throws(
      () => bridgeBundle({ url: 'ftp://mcp.example.com/mcp/3d', name: '3d' }),
      usage(/https:\/\//),
    );
    assert.throws(
      () => bridgeBundle({ url: 'https://mcp.example.com/mcp/3d', name: '../3d' }),
      usage(/entry name/),
    );
    assert.throws(
      () =>
        bridgeBundle({
          url: 'https://mcp.example.com/mcp/3d',
          name: '3d',
          ca: { pem: Buffer.from('not a cert') },
        }),
      usage(/no PEM certificate/),
    );
  });
});
