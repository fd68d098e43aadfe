// `mcp-relay claude bundle --url …`: writes `<name>.mcpb`, a Claude Desktop extension of the bridge
// for one gateway URL, that a colleague installs with a double-click and their API key.

import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defineCommand } from 'citty';
import { bridgeBundle } from '../../claude/bundle.ts';
import { entryNameFromUrl, isCleartextRemote } from '../../claude/entry.ts';
import { errorText, RelayError } from '../../errors.ts';
import { zipArchive } from '../../util/zip.ts';
import { absolutePathIn, ioFrom } from '../io.ts';

export const bundleCommand = defineCommand({
  meta: {
    name: 'bundle',
    description:
      'Write <name>.mcpb: a Claude Desktop extension of the bridge for a gateway URL (no key inside)',
  },
  args: {
    url: {
      type: 'string',
      required: true,
      description: "the gateway's MCP URL, e.g. https://mcp.example.com/mcp/3d",
      valueHint: 'URL',
    },
    name: { type: 'string', description: 'the extension name Claude Desktop shows (default: from the URL)' },
    ca: {
      type: 'string',
      description: 'the CA file (PEM) of the gateway certificate, carried in the bundle',
      valueHint: 'FILE',
    },
    out: { type: 'string', description: 'folder to write the .mcpb into (default: here)', valueHint: 'DIR' },
  },
  async run({ args, data }) {
    const io = ioFrom(data);
    const name = args.name ?? entryNameFromUrl(args.url);
    const ca = args.ca === undefined ? undefined : { pem: readCa(absolutePathIn(io, args.ca)) };
    const bundle = bridgeBundle({ url: args.url, name, ca });
    const archive = zipArchive(bundle.files);
    const dir = absolutePathIn(io, args.out ?? '.');
    await mkdir(dir, { recursive: true });
    const path = join(dir, `${name}.mcpb`);
    await writeFile(path, archive, { mode: 0o644 });
    io.stdout.write(
      `wrote ${path} (${(archive.length / 1024).toFixed(0)} KiB, ${bundle.files.length} files)\n`,
    );
    io.stdout.write(
      'Send it to your colleagues: they open it with Claude Desktop (double-click, or Settings → Extensions), paste their API key from "mcp-relay keys create <user>", and enable it.\n',
    );
    if (isCleartextRemote(args.url)) {
      io.stderr.write('warning: the URL is plain http to another machine; keys would travel unencrypted.\n');
    }
    return 0;
  },
});

function readCa(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new RelayError('USAGE', `cannot read the --ca file ${path}: ${errorText(error)}`);
  }
}
