// Waiting in tests for something that happens in another process: polled, bounded, and named, so a
// timeout says what never happened.

/** Polls `check` every 100 ms until it holds; resolves with the milliseconds it took. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 15_000,
): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return Date.now() - started;
}
