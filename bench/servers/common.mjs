// Shared fixtures of the benchmark servers: the same bodies for every
// server, so each workload compares like with like.

export const HELLO = 'Hello, World!'
/** 100 KB of pseudo-random bytes: a fixed xorshift sequence, identical in every process. */
export const BIG = (() => {
  const b = Buffer.alloc(100 * 1024)
  let x = 0x2545f491
  for (let i = 0; i < b.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b[i] = x & 0xff
  }
  return b
})()
/** About 1 MB of compressible JSON (the compression workload). */
export const BIG_JSON = JSON.stringify(
  Array.from({ length: 12_000 }, (_, i) => ({ id: i, name: `Item ${i}`, price: (i * 7) % 1000, tags: ['a', 'b'] })),
)
export const port = () => Number(process.env.PORT ?? 0)
/** Tells the parent process where we listen and what we can do. */
export function ready(info) {
  process.stdout.write(`READY ${JSON.stringify(info)}\n`)
}
