// Opens the sign-in page: the system browser (xdg-open, open, or Windows' URL handler), or the
// command in --browser / MCP_RELAY_BROWSER (`none` only prints the URL). The URL is always printed
// on stderr too, for machines where no browser can be opened.

import { spawn } from 'node:child_process';
import { errorText } from '../../errors.ts';
import type { BridgeLog } from '../diagnostics.ts';

/**
 * The argv that opens `url`: the configured command's words (double quotes group words; `%s`, if
 * present, is replaced by the URL, else the URL is the last argument), or the platform's opener.
 * Undefined when the command is `none`.
 */
export function browserCommand(
  url: string,
  configured: string | undefined,
  platform: NodeJS.Platform = process.platform,
): string[] | undefined {
  if (configured !== undefined && configured.trim() !== '') {
    if (configured.trim() === 'none') return undefined;
    const words = splitWords(configured);
    return words.includes('%s') ? words.map((word) => (word === '%s' ? url : word)) : [...words, url];
  }
  if (platform === 'darwin') return ['open', url];
  // rundll32 hands the URL to the default browser without a shell, so `&` in the query stays intact.
  if (platform === 'win32') return ['rundll32', 'url.dll,FileProtocolHandler', url];
  return ['xdg-open', url];
}

/** Starts the browser without waiting for it; a failure to start is only reported (the URL is on stderr). */
export function openBrowser(url: string, configured: string | undefined, log: BridgeLog): void {
  const argv = browserCommand(url, configured);
  if (!argv) return;
  const [command, ...args] = argv as [string, ...string[]];
  try {
    const child = spawn(command, args, { stdio: 'ignore', detached: true, shell: false });
    child.once('error', (error: NodeJS.ErrnoException) => {
      log.warn(
        `could not open a browser (${command}: ${error.code ?? error.message}); open the URL above yourself`,
      );
    });
    child.unref();
  } catch (error) {
    log.warn(`could not open a browser (${errorText(error)}); open the URL above yourself`);
  }
}

function splitWords(text: string): string[] {
  const words: string[] = [];
  for (const match of text.matchAll(/"([^"]*)"|(\S+)/g)) words.push(match[1] ?? match[2] ?? '');
  return words;
}
