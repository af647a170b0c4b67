/**
 * The command line's one argument reader, shared by `httpy bench` and
 * `httpy serve`: `--flag value`, `--flag=value` and `-f value`, and the
 * numbers they take.
 */

export interface Arg {
  /** The flag without any `=value` part, or the whole argument. */
  flag: string
  /** The argument as given. */
  raw: string
  /** The flag's value: after `=`, or the next argument (consumed). */
  value(): string | undefined
}

/** Walks `argv`; `value()` on an item takes the next argument when it has no `=`. */
export function* args(argv: readonly string[]): Generator<Arg> {
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i] as string
    const eq = raw.startsWith('--') ? raw.indexOf('=') : -1
    yield {
      flag: eq > 0 ? raw.slice(0, eq) : raw,
      raw,
      value: () => (eq > 0 ? raw.slice(eq + 1) : argv[++i]),
    }
  }
}

/**
 * `v` as a number of the given kind, or the message a usage error should
 * carry (`--port needs a whole number (got "x")`).
 */
export function numberArg(flag: string, v: string | undefined, kind: 'number' | 'integer' | 'whole'): number | string {
  const n = Number(v)
  const ok =
    v !== undefined && v !== '' && Number.isFinite(n) && (kind === 'number' || Number.isInteger(n)) && (kind !== 'whole' || n >= 0)
  if (ok) return n
  const what = kind === 'whole' ? 'a whole number' : kind === 'integer' ? 'an integer' : 'a number'
  return `${flag} needs ${what} (got ${v === undefined ? 'nothing' : JSON.stringify(v)})`
}
