// `mcp-relay doctor <url>`: walks the path `connect` takes to a gateway, one step at a time, on the
// colleague's PC — proxy, DNS, TCP, the proxy's tunnel, TLS (trust, name, expiry), the gateway itself
// and the clock, the credential, then MCP initialize and tools/list — and says for each failure what to
// change. A failed network step skips the steps that need it. Uses connect's own setup (CA, client
// certificate, proxy, token), so what passes here is what the bridge will do.

import { lookup } from 'node:dns/promises';
import { request } from 'node:http';
import { isIP, type Socket, connect as tcpConnect } from 'node:net';
import { checkServerIdentity, type PeerCertificate, rootCertificates, connect as tlsConnect } from 'node:tls';
import { fetch, type Response } from 'undici';
import { LATEST_PROTOCOL_VERSION } from '../protocol/versions.ts';
import { createDispatcher, proxyFor } from './dispatcher.ts';
import type { ConnectSetup } from './options.ts';
import { parseSse } from './sse.ts';

export type StepStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface DoctorStep {
  step: string;
  status: StepStatus;
  detail: string;
  /** What to change, for a warning or failure. */
  fix?: string;
}

export interface DoctorOptions {
  setup: Pick<ConnectSetup, 'url' | 'headers' | 'auth' | 'ca' | 'clientCert' | 'proxy'>;
  /** How long one step may take. */
  timeoutMs: number;
}

/** A certificate expiring sooner than this is a warning. */
const EXPIRY_WARNING_DAYS = 14;
/** A clock further off than this from the gateway's is a warning. */
const CLOCK_SKEW_WARNING_MS = 30_000;

/** Runs every step, handing each to `report` as it ends; resolves to all of them. */
export async function runDoctor(
  options: DoctorOptions,
  report: (step: DoctorStep) => void,
): Promise<DoctorStep[]> {
  const steps: DoctorStep[] = [];
  const note = (step: DoctorStep): DoctorStep => {
    steps.push(step);
    report(step);
    return step;
  };
  const { url } = options.setup;
  const https = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || (https ? 443 : 80));
  const proxy = proxyFor(url, options.setup.proxy);
  note(
    proxy === undefined
      ? { step: 'proxy', status: 'ok', detail: `none for ${host} (direct connection)` }
      : {
          step: 'proxy',
          status: 'ok',
          detail: `through ${shownProxy(proxy)} (from --proxy or the *_PROXY variables)`,
        },
  );
  const hop = proxy === undefined ? { host, port } : proxyAddress(proxy);

  // The steps after the network ones, in order: a failure skips the rest.
  const order = [
    'dns',
    'tcp',
    ...(proxy !== undefined && https ? ['tunnel'] : []),
    ...(https ? ['tls'] : []),
  ];
  const skipRest = (failed: string): DoctorStep[] => {
    for (const step of [...order.slice(order.indexOf(failed) + 1), 'gateway', 'auth', 'mcp'])
      note({ step, status: 'skip', detail: `needs the ${failed} step` });
    return steps;
  };

  const resolved = await checkDns(hop.host, options.timeoutMs);
  note(resolved.step);
  if (resolved.address === undefined) return skipRest('dns');
  const socket = await checkTcp(resolved.address, hop.port, hop.host, options.timeoutMs);
  note(socket.step);
  if (socket.socket === undefined) return skipRest('tcp');
  let stream: Socket = socket.socket;
  if (proxy !== undefined && https) {
    const tunnel = await checkTunnel(stream, host, port, proxy, options.timeoutMs);
    note(tunnel.step);
    if (tunnel.socket === undefined) {
      stream.destroy();
      return skipRest('tunnel');
    }
    stream = tunnel.socket;
  }
  if (https) {
    const tls = await checkTls(stream, host, options);
    note(tls);
    if (tls.status === 'fail') return skipRest('tls');
  } else {
    stream.destroy();
  }

  const dispatcher = createDispatcher({
    ca: options.setup.ca,
    clientCert: options.setup.clientCert,
    proxy: options.setup.proxy,
  });
  try {
    const gateway = await checkGateway(url, dispatcher, options.timeoutMs);
    for (const step of gateway) note(step);
    const session = await checkAuth(options, dispatcher);
    note(session.step);
    if (session.id === undefined && session.step.status === 'fail') {
      note({ step: 'mcp', status: 'skip', detail: 'needs the auth step' });
      return steps;
    }
    note(await checkTools(options, dispatcher, session.id));
  } finally {
    await dispatcher.close();
  }
  return steps;
}

async function checkDns(host: string, timeoutMs: number): Promise<{ step: DoctorStep; address?: string }> {
  if (isIP(host) !== 0)
    return { step: { step: 'dns', status: 'ok', detail: `${host} is an address` }, address: host };
  const started = Date.now();
  try {
    const addresses = await withTimeout(lookup(host, { all: true }), timeoutMs, 'no answer');
    const first = addresses[0]?.address;
    if (first === undefined) throw Object.assign(new Error('no address'), { code: 'ENOTFOUND' });
    const shown = addresses.map((entry) => entry.address).join(', ');
    return {
      step: { step: 'dns', status: 'ok', detail: `${host} → ${shown} (${Date.now() - started} ms)` },
      address: first,
    };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return {
      step: {
        step: 'dns',
        status: 'fail',
        detail: `${host} does not resolve (${code})`,
        fix: 'check the name in the URL for typos; an office name may need the VPN or the office network; ask your admin for the gateway address',
      },
    };
  }
}

async function checkTcp(
  address: string,
  port: number,
  name: string,
  timeoutMs: number,
): Promise<{ step: DoctorStep; socket?: Socket }> {
  const started = Date.now();
  const where = `${isIP(address) === 6 ? `[${address}]` : address}:${port}`;
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: address, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({
        step: {
          step: 'tcp',
          status: 'fail',
          detail: `no answer from ${where} within ${timeoutMs} ms`,
          fix: `a firewall drops the connection, or ${name} is the wrong address; try from another network, or ask your admin which port is open`,
        },
      });
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve({
        step: {
          step: 'tcp',
          status: 'ok',
          detail: `${where} accepts connections (${Date.now() - started} ms)`,
        },
        socket,
      });
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const refused = error.code === 'ECONNREFUSED';
      resolve({
        step: {
          step: 'tcp',
          status: 'fail',
          detail: refused
            ? `${where} refused the connection`
            : `cannot connect to ${where} (${error.code ?? error.message})`,
          fix: refused
            ? 'nothing listens there: is the gateway running (mcp-relay serve), and is the port in the URL its port?'
            : 'check the network path to the gateway (VPN, firewall)',
        },
      });
    });
  });
}

/** CONNECT through the proxy on `socket`; the tunnel's socket when the proxy agrees. */
async function checkTunnel(
  socket: Socket,
  host: string,
  port: number,
  proxy: URL,
  timeoutMs: number,
): Promise<{ step: DoctorStep; socket?: Socket }> {
  const target = `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
  const headers: Record<string, string> = { host: target };
  if (proxy.username !== '')
    headers['proxy-authorization'] =
      `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}`;
  return new Promise((resolve) => {
    const req = request({ method: 'CONNECT', path: target, headers, createConnection: () => socket });
    const timer = setTimeout(() => req.destroy(new Error('timeout')), timeoutMs);
    req.once('connect', (res, tunnel) => {
      clearTimeout(timer);
      if (res.statusCode === 200) {
        resolve({
          step: { step: 'tunnel', status: 'ok', detail: `the proxy opened a tunnel to ${target}` },
          socket: tunnel,
        });
        return;
      }
      tunnel.destroy();
      resolve({
        step: {
          step: 'tunnel',
          status: 'fail',
          detail: `the proxy answered ${res.statusCode} to CONNECT ${target}`,
          fix:
            res.statusCode === 407
              ? 'the proxy wants a sign-in: put user:password in the proxy URL (HTTPS_PROXY=http://user:pass@proxy:3128)'
              : `the proxy does not let this through: ask IT to allow ${target}, or put ${host} in NO_PROXY if it is reachable directly`,
        },
      });
    });
    req.once('error', (error) => {
      clearTimeout(timer);
      resolve({
        step: {
          step: 'tunnel',
          status: 'fail',
          detail: `the proxy did not open a tunnel (${error.message})`,
          fix: 'check the proxy address in --proxy or HTTPS_PROXY',
        },
      });
    });
    req.end();
  });
}

/** The TLS handshake over `socket`: trust, the name, the validity dates (and the client certificate, if any). */
async function checkTls(socket: Socket, host: string, options: DoctorOptions): Promise<DoctorStep> {
  const { ca, clientCert } = options.setup;
  return new Promise((resolve) => {
    const secure = tlsConnect({
      socket,
      ...(isIP(host) === 0 ? { servername: host } : {}),
      ca: ca === undefined ? undefined : [...rootCertificates, ca],
      ...(clientCert ?? {}),
      // Checked below, so that every problem gets its own words.
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => secure.destroy(new Error('timeout')), options.timeoutMs);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      const cert = secure.getPeerCertificate(true);
      const authorizationError = secure.authorizationError;
      secure.destroy();
      resolve(judgeCertificate(host, cert, authorizationError, ca !== undefined));
    });
    secure.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({
        step: 'tls',
        status: 'fail',
        detail: `TLS handshake failed (${error.code ?? error.message})`,
        fix: /alert (certificate required|handshake failure|bad certificate)/i.test(error.message)
          ? 'the gateway wants a client certificate: pass --cert and --key'
          : 'is this port TLS at all? An http:// gateway needs an http:// URL',
      });
    });
  });
}

function judgeCertificate(
  host: string,
  cert: PeerCertificate,
  authorizationError: Error | null,
  customCa: boolean,
): DoctorStep {
  const subject = cert.subject?.CN ?? '?';
  const issuer = cert.issuer?.CN ?? '?';
  const notAfter = Date.parse(cert.valid_to);
  const days = Math.floor((notAfter - Date.now()) / 86_400_000);
  const about = `certificate for ${subject}, issued by ${issuer}, valid until ${new Date(notAfter).toISOString().slice(0, 10)}`;
  // Node gives the verification error's code as a string here, though it is typed as an Error.
  const failure: unknown = authorizationError;
  const code =
    typeof failure === 'string' ? failure : ((failure as NodeJS.ErrnoException | null)?.code ?? undefined);
  if (code === 'CERT_HAS_EXPIRED')
    return {
      step: 'tls',
      status: 'fail',
      detail: `${about}: expired`,
      fix: 'the gateway certificate must be renewed on the server (tls.cert; the gateway reloads it without a restart)',
    };
  if (code !== undefined)
    return {
      step: 'tls',
      status: 'fail',
      detail: `${about}: not trusted (${code})`,
      fix: customCa
        ? 'the --ca file is not the CA that signed this certificate: ask your admin for the office CA certificate'
        : 'pass --ca with the CA certificate (PEM) that signed the gateway certificate, here and in the Claude Desktop entry (mcp-relay connect … --ca office-ca.pem)',
    };
  const mismatch = checkServerIdentity(host, cert);
  if (mismatch !== undefined)
    return {
      step: 'tls',
      status: 'fail',
      detail: `${about}: not valid for ${host}`,
      fix: `use the name the certificate is for (${cert.subjectaltname ?? subject}) in the URL, or have the certificate reissued for ${host}`,
    };
  if (days < EXPIRY_WARNING_DAYS)
    return {
      step: 'tls',
      status: 'warn',
      detail: `${about}: expires in ${days} day${days === 1 ? '' : 's'}`,
      fix: 'ask your admin to renew the gateway certificate soon',
    };
  return { step: 'tls', status: 'ok', detail: `${about} (${days} days left), trusted` };
}

/** `/healthz` of the gateway: what it is and whether it is well, and the clock compared with its `Date`. */
async function checkGateway(
  url: URL,
  dispatcher: ReturnType<typeof createDispatcher>,
  timeoutMs: number,
): Promise<DoctorStep[]> {
  const healthUrl = new URL('/healthz', url);
  let response: Response;
  const sent = Date.now();
  try {
    response = await fetch(healthUrl, { dispatcher, signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    return [
      {
        step: 'gateway',
        status: 'fail',
        detail: `GET ${healthUrl.pathname} failed (${describeFetchError(error)})`,
        fix: 'the connection works but HTTP does not: a proxy or firewall may be interfering',
      },
    ];
  }
  const received = Date.now();
  const steps: DoctorStep[] = [];
  const body = (await response.json().catch(() => undefined)) as Record<string, unknown> | undefined;
  if (response.ok && body !== undefined && typeof body.status === 'string') {
    const degraded = body.status !== 'ok';
    steps.push({
      step: 'gateway',
      status: degraded ? 'warn' : 'ok',
      detail: `mcp-relay ${String(body.version ?? '?')}, ${body.status}${Array.isArray(body.unhealthy) ? ` (unhealthy: ${body.unhealthy.join(', ')})` : ''}`,
      ...(degraded
        ? { fix: 'some servers on the gateway are failing: tell your admin (the gateway log names them)' }
        : {}),
    });
  } else {
    steps.push({
      step: 'gateway',
      status: 'warn',
      detail: `${healthUrl.pathname} answered ${response.status}: not an mcp-relay gateway, or a proxy in front answers for it`,
    });
  }
  const date = Date.parse(response.headers.get('date') ?? '');
  if (Number.isFinite(date)) {
    // Date has whole seconds, rounded down; the middle of the exchange is when it was written.
    const offBy = (sent + received) / 2 - (date + 500);
    const seconds = Math.round(Math.abs(offBy) / 1000);
    steps.push(
      Math.abs(offBy) > CLOCK_SKEW_WARNING_MS
        ? {
            step: 'clock',
            status: 'warn',
            detail: `this computer's clock is ${seconds} s ${offBy > 0 ? 'ahead of' : 'behind'} the gateway's`,
            fix: 'set the clock automatically (NTP): key and token expiry and OAuth sign-in compare clocks',
          }
        : { step: 'clock', status: 'ok', detail: `within ${Math.max(1, seconds)} s of the gateway's` },
    );
  }
  return steps;
}

/** MCP initialize with the credential: the session id when accepted. */
async function checkAuth(
  options: DoctorOptions,
  dispatcher: ReturnType<typeof createDispatcher>,
): Promise<{ step: DoctorStep; id?: string }> {
  const { url, auth } = options.setup;
  const initialize = {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: {
      protocolVersion: LATEST_PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: 'mcp-relay-doctor', version: '1' },
    },
  };
  let response: Response;
  try {
    response = await post(options, dispatcher, initialize);
  } catch (error) {
    return {
      step: { step: 'auth', status: 'fail', detail: `initialize failed (${describeFetchError(error)})` },
    };
  }
  const status = response.status;
  if (status === 401 || status === 403) {
    const wwwAuthenticate = response.headers.get('www-authenticate') ?? undefined;
    await response.body?.cancel();
    if (status === 403)
      return {
        step: {
          step: 'auth',
          status: 'fail',
          detail: 'the gateway knows you but does not let you use this server (403)',
          fix: 'ask your admin to allow your user or group on this server (policy)',
        },
      };
    const outcome = await auth.unauthorized({ status, wwwAuthenticate, url });
    const oauth = wwwAuthenticate?.includes('resource_metadata') === true;
    return {
      step: {
        step: 'auth',
        status: 'fail',
        detail: outcome.retry ? 'the credential was refused (401)' : outcome.hint,
        fix: oauth
          ? 'ask your admin for a new API key (mcp-relay keys create <you>), or leave the token unset to sign in with OAuth in the browser when connect starts'
          : 'ask your admin for a new API key (mcp-relay keys create <you>); a revoked or expired key stops working at once',
      },
    };
  }
  if (!response.ok) {
    const text = (await response.text().catch(() => '')).slice(0, 200);
    return {
      step: {
        step: 'auth',
        status: 'fail',
        detail: `initialize answered ${status}${text ? `: ${oneLine(text)}` : ''}`,
        fix:
          status === 404
            ? 'no MCP server at this path: the gateway serves /mcp/<server>; check the server name in the URL'
            : status === 421
              ? "the gateway's publicUrl names another address: use that address in the URL"
              : 'see the message above; the gateway log has the details',
      },
    };
  }
  const answer = await readMessage(response);
  const id = response.headers.get('mcp-session-id') ?? undefined;
  const server = (answer?.result as { serverInfo?: { name?: string; version?: string } } | undefined)
    ?.serverInfo;
  if (answer?.error !== undefined || server === undefined)
    return {
      step: {
        step: 'auth',
        status: 'fail',
        detail: `initialize failed: ${oneLine(JSON.stringify(answer?.error ?? answer))}`,
      },
    };
  return {
    step: {
      step: 'auth',
      status: 'ok',
      detail: `accepted; MCP server ${server.name ?? '?'} ${server.version ?? ''}`.trimEnd(),
    },
    ...(id === undefined ? {} : { id }),
  };
}

/** tools/list in the session initialize opened, and the session ended again. */
async function checkTools(
  options: DoctorOptions,
  dispatcher: ReturnType<typeof createDispatcher>,
  session: string | undefined,
): Promise<DoctorStep> {
  const sessionHeaders: Record<string, string> = session === undefined ? {} : { 'mcp-session-id': session };
  try {
    await (
      await post(options, dispatcher, { jsonrpc: '2.0', method: 'notifications/initialized' }, sessionHeaders)
    ).body?.cancel();
    const response = await post(
      options,
      dispatcher,
      { jsonrpc: '2.0', id: 2, method: 'tools/list' },
      sessionHeaders,
    );
    const answer = response.ok ? await readMessage(response) : undefined;
    const tools = (answer?.result as { tools?: Array<{ name?: string }> } | undefined)?.tools;
    if (tools === undefined)
      return {
        step: 'mcp',
        status: 'fail',
        detail: `tools/list answered ${response.status}${answer?.error ? `: ${oneLine(JSON.stringify(answer.error))}` : ''}`,
        fix: 'the gateway log says why the server failed',
      };
    const names = tools.map((tool) => tool.name ?? '?');
    const shown = names.slice(0, 6).join(', ') + (names.length > 6 ? ', …' : '');
    return {
      step: 'mcp',
      status: 'ok',
      detail: `tools/list: ${names.length} tool${names.length === 1 ? '' : 's'} (${shown})`,
    };
  } catch (error) {
    return { step: 'mcp', status: 'fail', detail: `tools/list failed (${describeFetchError(error)})` };
  } finally {
    if (session !== undefined)
      await fetch(options.setup.url, {
        method: 'DELETE',
        dispatcher,
        headers: { ...(await options.setup.auth.headers()), ...options.setup.headers, ...sessionHeaders },
      })
        .then((response) => response.body?.cancel())
        .catch(() => undefined);
  }
}

async function post(
  options: DoctorOptions,
  dispatcher: ReturnType<typeof createDispatcher>,
  message: unknown,
  extra: Record<string, string> = {},
): Promise<Response> {
  return fetch(options.setup.url, {
    method: 'POST',
    dispatcher,
    signal: AbortSignal.timeout(options.timeoutMs),
    headers: {
      ...options.setup.headers,
      ...(await options.setup.auth.headers()),
      ...extra,
      accept: 'application/json, text/event-stream',
      'content-type': 'application/json',
    },
    body: JSON.stringify(message),
  });
}

/** The JSON-RPC message of a JSON or SSE reply (its first message with a result or error). */
async function readMessage(response: Response): Promise<Record<string, unknown> | undefined> {
  if (!(response.headers.get('content-type') ?? '').includes('text/event-stream'))
    return (await response.json().catch(() => undefined)) as Record<string, unknown> | undefined;
  if (response.body === null) return undefined;
  for await (const event of parseSse(response.body)) {
    try {
      const message = JSON.parse(event.data) as Record<string, unknown>;
      if ('result' in message || 'error' in message) {
        await response.body.cancel().catch(() => undefined);
        return message;
      }
    } catch {
      // Not JSON: a comment-like event; read on.
    }
  }
  return undefined;
}

function proxyAddress(proxy: URL): { host: string; port: number } {
  return {
    host: proxy.hostname.replace(/^\[|\]$/g, ''),
    port: Number(proxy.port || (proxy.protocol === 'https:' ? 443 : 80)),
  };
}

/** A proxy URL without its password. */
function shownProxy(proxy: URL): string {
  return `${proxy.protocol}//${proxy.username ? `${decodeURIComponent(proxy.username)}:***@` : ''}${proxy.host}`;
}

function describeFetchError(error: unknown): string {
  const cause = (error as { cause?: NodeJS.ErrnoException }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

function oneLine(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: server text shown on one terminal line.
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').slice(0, 200);
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(message), { code: 'ETIMEOUT' })), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
