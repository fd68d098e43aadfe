// The gateway listener's options from config: the timeouts that cut off slow (slowloris) clients, TLS,
// and client certificates (mTLS): handshake settings, and reloading rotated certificate and CRL files
// without a restart (who a certificate names is auth/client-cert.ts).

import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { ServerOptions as HttpServerOptions } from 'node:http';
import type { Server as HttpsServer, ServerOptions as HttpsServerOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { clientCertMode } from '../auth/client-cert.ts';
import { listenTls, type RelayConfig, type TlsConfig } from '../config/schema.ts';
import { errorText, RelayError } from '../errors.ts';
import type { Logger } from '../log.ts';

/** limits.headersTimeout and limits.receiveTimeout, for every listener of the gateway (TCP and the SSH socket). */
export function slowClientTimeouts(config: RelayConfig): HttpServerOptions {
  const { headersTimeout, receiveTimeout } = config.limits;
  return {
    // node refuses a headers timeout longer than the request timeout.
    headersTimeout: Math.min(headersTimeout, receiveTimeout),
    requestTimeout: receiveTimeout,
    // node checks these timeouts only this often (30 s by default): keep the overshoot small.
    connectionsCheckingInterval: Math.max(
      100,
      Math.min(5_000, Math.floor(Math.min(headersTimeout, receiveTimeout) / 4)),
    ),
  };
}

/** The TCP listener's options: the slow-client timeouts, and TLS with client certificates when `listen.tls` is set. */
export function serverOptions(config: RelayConfig): HttpServerOptions & HttpsServerOptions {
  const timeouts = slowClientTimeouts(config);
  const tls = listenTls(config);
  if (!tls) return timeouts;
  if (config.auth.clientCert && !tls.clientCa) {
    throw new RelayError(
      'CONFIG_INVALID',
      'auth.clientCert needs listen.tls.clientCa (the CA that signs client certificates)',
    );
  }
  const mode = clientCertMode(config);
  return {
    ...timeouts,
    ...secureContextOptions(tls),
    // The handshake lets any certificate through: `required` refuses untrusted ones right after it
    // (superviseTls, which can log why, unlike node's own rejectUnauthorized), `optional` per request.
    ...(mode ? { requestCert: true, rejectUnauthorized: false } : {}),
  };
}

/** The parts of the TLS options that files provide, re-read on every reload. */
function secureContextOptions(tls: TlsConfig): HttpsServerOptions {
  const crls = tls.crl === undefined ? [] : typeof tls.crl === 'string' ? [tls.crl] : tls.crl;
  return {
    cert: readTlsFile(tls.cert, 'listen.tls.cert'),
    key: readTlsFile(tls.key, 'listen.tls.key'),
    ...(tls.clientCa ? { ca: readTlsFile(tls.clientCa, 'listen.tls.clientCa') } : {}),
    ...(crls.length > 0 ? { crl: crls.map((file) => readTlsFile(file, 'listen.tls.crl')) } : {}),
  };
}

/** The client CA and CRL content as one comparable string (empty without client certificates). */
function trustFiles(tls: TlsConfig, options = secureContextOptions(tls)): string {
  const crl = options.crl === undefined ? [] : Array.isArray(options.crl) ? options.crl : [options.crl];
  return [options.ca, ...crl].map((part) => (part === undefined ? '' : part.toString('base64'))).join('|');
}

function readTlsFile(file: string, key: string): Buffer {
  try {
    return readFileSync(file);
  } catch (cause) {
    throw new RelayError(
      'CONFIG_INVALID',
      `${key}: cannot read ${file}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
}

/**
 * With `clientCert: required`, closes every connection whose certificate is missing or untrusted right
 * after the handshake, before any HTTP, and logs why (CERT_HAS_EXPIRED, CERT_REVOKED, …). Also re-reads
 * the certificate, key, client CA and CRL files when they change (stat polling, as for the keys file),
 * so certificates rotate and revocations apply without a restart. A broken file (or a key that does not
 * match the certificate mid-rotation) keeps the last good context and is logged.
 */
export function superviseTls(
  server: HttpsServer,
  config: RelayConfig,
  log: Logger,
  intervalMs = 1_000,
): { close(): void } {
  const tls = listenTls(config);
  if (!tls) return { close() {} };
  if (clientCertMode(config) === 'required') {
    // Prepended: runs before the HTTP layer adopts the socket.
    server.prependListener('secureConnection', (socket: TLSSocket) => {
      if (socket.authorized) return;
      const subject = socket.getPeerCertificate()?.subject?.CN;
      log.info(
        {
          reason: String(socket.authorizationError ?? 'no certificate'),
          subject: typeof subject === 'string' ? subject.slice(0, 64) : undefined,
          remote: socket.remoteAddress,
        },
        'client certificate refused',
      );
      socket.destroy();
    });
  }
  // Connections that presented a client certificate: a new CA or CRL must apply to them too, not only
  // to later handshakes (a revoked client could otherwise keep a busy keep-alive connection for ever).
  const certified = new Set<TLSSocket>();
  if (tls.clientCa) {
    server.on('secureConnection', (socket: TLSSocket) => {
      if (socket.destroyed || Object.keys(socket.getPeerCertificate() ?? {}).length === 0) return;
      certified.add(socket);
      socket.once('close', () => certified.delete(socket));
    });
  }
  server.on('tlsClientError', (error: NodeJS.ErrnoException, socket) => {
    log.debug({ code: error.code, remote: socket.remoteAddress }, 'TLS handshake failed');
  });
  const crls = tls.crl === undefined ? [] : typeof tls.crl === 'string' ? [tls.crl] : tls.crl;
  const files = [...new Set([tls.cert, tls.key, ...(tls.clientCa ? [tls.clientCa] : []), ...crls])];
  let timer: NodeJS.Timeout | undefined;
  let trust = trustFiles(tls);
  const reload = () => {
    try {
      const options = secureContextOptions(tls);
      server.setSecureContext(options);
      log.info('TLS certificates reloaded');
      const next = trustFiles(tls, options);
      if (next !== trust && certified.size > 0) {
        // Their clients reconnect and are checked against the new CA and CRL at the handshake.
        log.info(
          { connections: certified.size },
          'client CA or CRL changed: closing certificate connections',
        );
        for (const socket of certified) socket.destroy();
      }
      trust = next;
    } catch (error) {
      log.error(
        { err: errorText(error) },
        'TLS files changed but could not be loaded; keeping the previous ones',
      );
    }
  };
  // Several files often change together (cert + key): one reload after they settle.
  const onChange = () => {
    clearTimeout(timer);
    timer = setTimeout(reload, 200);
    timer.unref();
  };
  for (const file of files) watchFile(file, { interval: intervalMs, persistent: false }, onChange);
  return {
    close() {
      clearTimeout(timer);
      for (const file of files) unwatchFile(file, onChange);
    },
  };
}
