/**
 * A Bun/Deno-style module: `export default { fetch }`, served by the
 * `httpy` command (docs/fetch.md). TypeScript loads through tsx.
 *
 *   npx httpy serve examples/fetch-module.ts      # from this repository: npx tsx ts/cli.ts serve examples/fetch-module.ts
 *   curl -X POST --data '{"n":2}' http://127.0.0.1:8080/double
 */
export default {
  port: Number(process.env.PORT ?? 8080),
  hostname: process.env.HOST ?? '127.0.0.1',
  async fetch(request: Request): Promise<Response> {
    const { pathname } = new URL(request.url)
    if (request.method === 'POST' && pathname === '/double') {
      const { n } = (await request.json()) as { n: number }
      return Response.json({ result: n * 2 })
    }
    return new Response(`Hello from ${pathname}`)
  },
}
