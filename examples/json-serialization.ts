/**
 * Pre-serialised JSON (guide: "JSON Serialization", where orjson produces
 * bytes): serialise once, hand the bytes over as a Buffer. Buffers of 16 KiB
 * and more reach the Rust core without being copied.
 *
 *   npx tsx examples/json-serialization.ts
 *   curl http://127.0.0.1:8080/api/large-dataset
 */
import { Response, get, run } from 'httpy'

get('/api/large-dataset', () => {
  // Generate a large dataset.
  const data = Array.from({ length: 10000 }, (_, i) => ({ id: i, name: `Item ${i}` }))
  // Serialise straight to bytes.
  const jsonBytes = Buffer.from(JSON.stringify(data))
  // Create a response with the pre-serialised JSON.
  return new Response(jsonBytes, { headers: { 'Content-Type': 'application/json' } })
})

const host = process.env.HOST ?? '127.0.0.1'
await run({ host, port: Number(process.env.PORT ?? 8080) })
