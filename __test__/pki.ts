/**
 * A throw-away certificate authority for the TLS tests, made at test time
 * with the openssl CLI (no key is committed): leaves with chosen names
 * (server or client), expired ones, and a second CA whose leaves the
 * first does not trust.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Leaf {
  /** Path of the chain file (leaf, then CA). */
  cert: string
  /** Path of the leaf's key. */
  key: string
  /** The leaf's PEM alone. */
  pem: string
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

export class TestPki {
  readonly dir: string
  /** PEM of the CA certificate (what clients, or the server for mTLS, trust). */
  readonly ca: string
  readonly caFile: string
  #serial = 1
  #name: string

  constructor(name = 'ca') {
    this.#name = name
    this.dir = mkdtempSync(join(tmpdir(), `httpy-pki-${name}-`))
    this.#run(['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', `/CN=httpy test ${name}`])
    this.caFile = join(this.dir, 'ca.pem')
    this.ca = readFileSync(this.caFile, 'utf8')
    writeFileSync(join(this.dir, 'index.txt'), '')
    writeFileSync(
      join(this.dir, 'ca.cnf'),
      '[ca]\ndefault_ca=c\n[c]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\npolicy=p\ndefault_md=sha256\n' +
        'unique_subject=no\ncopy_extensions=none\n[p]\ncommonName=supplied\norganizationName=optional\n',
    )
  }

  #run(args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: 'pipe' })
  }

  /**
   * A leaf signed by this CA. `names` go into subjectAltName (DNS, or IP
   * for addresses); `subject` defaults to `/CN=<first name>`.
   */
  leaf(file: string, names: string[], opts: { expired?: boolean; client?: boolean; subject?: string } = {}): Leaf {
    const n = this.#serial++
    writeFileSync(join(this.dir, 'serial'), n.toString(16).padStart(2, '0') + '\n')
    const san = names.map((x) => (/^[\d.]+$|:/.test(x) ? `IP:${x}` : `DNS:${x}`)).join(',')
    const ext = [
      san ? `subjectAltName=${san}` : '',
      `extendedKeyUsage=${opts.client ? 'clientAuth' : 'serverAuth'}`,
    ].filter(Boolean)
    writeFileSync(join(this.dir, `${file}.ext`), `[x]\n${ext.join('\n')}\n`)
    const subject = opts.subject ?? `/CN=${names[0] ?? file}`
    this.#run(['req', ...EC, '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', subject])
    const dates = opts.expired ? ['-startdate', '20200101000000Z', '-enddate', '20200102000000Z'] : ['-days', '2']
    this.#run([
      'ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.pem', '-keyfile', 'ca.key', '-in', `${file}.csr`,
      '-out', `${file}.leaf.pem`, '-notext', '-extfile', `${file}.ext`, '-extensions', 'x', ...dates,
    ])
    const pem = readFileSync(join(this.dir, `${file}.leaf.pem`), 'utf8')
    writeFileSync(join(this.dir, `${file}.pem`), pem + this.ca)
    return { cert: join(this.dir, `${file}.pem`), key: join(this.dir, `${file}.key`), pem }
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }

  toString(): string {
    return `TestPki(${this.#name})`
  }
}
