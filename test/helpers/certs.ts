// Test PKI made with the openssl CLI: CAs, a server certificate for 127.0.0.1, client certificates
// (valid, expired, not yet valid, revoked) and a CRL — real files, so TLS is tested as users deploy it.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCa {
  name: string;
  dir: string;
  /** PEM file of the CA certificate. */
  cert: string;
  key: string;
}

export interface IssuedCert {
  cert: string;
  key: string;
  serial: string;
}

export interface ClientCertOptions {
  cn: string;
  /** Organizational units: become groups with `auth.clientCert.groupsFrom: ou`. */
  ou?: readonly string[];
  /** subjectAltName entries, e.g. ['email:alice@example.com', 'URI:spiffe://example.org/user/alice']. */
  san?: readonly string[];
  /** openssl `ca` dates (YYYYMMDDHHMMSSZ); default: valid from an hour ago for a day. */
  startDate?: string;
  endDate?: string;
}

/** A folder of test certificates; `close()` removes it. */
export class TestPki {
  readonly dir: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'mcp-relay-pki-'));
  }

  /** A self-signed CA with its own `openssl ca` database (for issuing, revoking and CRLs). */
  createCa(name: string): TestCa {
    const dir = join(this.dir, name);
    mkdirSync(join(dir, 'issued'), { recursive: true });
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'serial'), `10${randomBytes(7).toString('hex')}\n`);
    writeFileSync(join(dir, 'crlnumber'), '01\n');
    writeFileSync(join(dir, 'ca.cnf'), caConfig(dir));
    const ca: TestCa = { name, dir, cert: join(dir, 'ca.pem'), key: join(dir, 'ca.key') };
    openssl([
      'req',
      '-x509',
      '-config',
      join(dir, 'ca.cnf'),
      '-extensions',
      'v3_ca',
      ...EC_KEY,
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      ca.key,
      '-out',
      ca.cert,
    ]);
    return ca;
  }

  /**
   * A server certificate for localhost and 127.0.0.1, or for the names in `options.san` (e.g.
   * ['DNS:relay.test']), valid for a day unless `options` says otherwise.
   */
  serverCert(
    ca: TestCa,
    name = 'server',
    options: Pick<ClientCertOptions, 'san' | 'startDate' | 'endDate'> = {},
  ): IssuedCert {
    return this.#issue(ca, name, '/CN=localhost', 'server_ext', options);
  }

  clientCert(ca: TestCa, name: string, options: ClientCertOptions): IssuedCert {
    const subject = [`/CN=${options.cn}`, ...(options.ou ?? []).map((ou) => `/OU=${ou}`)].join('');
    return this.#issue(ca, name, subject, 'client_ext', options);
  }

  /** Marks `cert` revoked in `ca`'s database and writes a fresh CRL; returns the CRL's PEM file. */
  revoke(ca: TestCa, cert: IssuedCert): string {
    openssl(['ca', '-config', join(ca.dir, 'ca.cnf'), '-batch', '-revoke', cert.cert]);
    return this.crl(ca);
  }

  /** The current CRL of `ca` (PEM). */
  crl(ca: TestCa): string {
    const file = join(ca.dir, 'crl.pem');
    openssl(['ca', '-config', join(ca.dir, 'ca.cnf'), '-batch', '-gencrl', '-crldays', '1', '-out', file]);
    return file;
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  #issue(
    ca: TestCa,
    name: string,
    subject: string,
    extensions: 'server_ext' | 'client_ext',
    options: Pick<ClientCertOptions, 'san' | 'startDate' | 'endDate'>,
  ): IssuedCert {
    const key = join(ca.dir, `${name}.key`);
    const csr = join(ca.dir, `${name}.csr`);
    const cert = join(ca.dir, `${name}.pem`);
    const extFile = join(ca.dir, `${name}.ext`);
    const san = options.san ?? (extensions === 'server_ext' ? ['DNS:localhost', 'IP:127.0.0.1'] : []);
    writeFileSync(
      extFile,
      [
        `[${extensions}]`,
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature',
        `extendedKeyUsage = ${extensions === 'server_ext' ? 'serverAuth' : 'clientAuth'}`,
        ...(san.length > 0 ? [`subjectAltName = ${san.join(', ')}`] : []),
        '',
      ].join('\n'),
    );
    openssl(['req', '-new', ...EC_KEY, '-nodes', '-subj', subject, '-keyout', key, '-out', csr]);
    openssl([
      'ca',
      '-config',
      join(ca.dir, 'ca.cnf'),
      '-batch',
      '-notext',
      '-in',
      csr,
      '-out',
      cert,
      '-extfile',
      extFile,
      '-extensions',
      extensions,
      '-startdate',
      options.startDate ?? opensslDate(Date.now() - 3_600_000),
      '-enddate',
      options.endDate ?? opensslDate(Date.now() + 86_400_000),
    ]);
    const serial = execFileSync('openssl', ['x509', '-in', cert, '-noout', '-serial'], { encoding: 'utf8' })
      .trim()
      .replace(/^serial=/, '');
    return { cert, key, serial };
  }
}

/** `openssl ca` date form, 4-digit year (YYYYMMDDHHMMSSZ). */
export function opensslDate(ms: number): string {
  return `${new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim()}`);
  }
}

/** A self-contained config: tests must not depend on the system's openssl.cnf. */
function caConfig(dir: string): string {
  return `
[ca]
default_ca = test_ca

[test_ca]
dir = ${dir}
database = ${dir}/index.txt
new_certs_dir = ${dir}/issued
certificate = ${dir}/ca.pem
private_key = ${dir}/ca.key
serial = ${dir}/serial
crlnumber = ${dir}/crlnumber
default_md = sha256
default_days = 1
default_crl_days = 1
policy = policy_any
unique_subject = no
email_in_dn = no

[policy_any]
commonName = supplied
organizationalUnitName = optional

[req]
distinguished_name = req_dn
prompt = no

[req_dn]
CN = unused

[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
`;
}
