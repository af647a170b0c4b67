// Start-up shared by the HTTPy servers of the peers kit (peer.mjs,
// peer-ws.mjs, peer-static.mjs): listen on 127.0.0.1:$PORT, say so, and
// close on SIGTERM/SIGINT (the kit stops a server by PID with SIGTERM).
// Kept apart from common.mjs, whose fixtures would add to the RSS the kit's
// idle workload reads.
export async function listenPeer(app, name, defaultPort, options = {}) {
  const server = await app.listen({ ...options, host: '127.0.0.1', port: Number(process.env.PORT ?? defaultPort) })
  console.log(`${name} listening on ${server.url}`)
  const stop = () => void server.close({ timeout: 1 }).then(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  return server
}
