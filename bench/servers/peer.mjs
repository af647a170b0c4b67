// HTTPy as a peer of ../shared/peers/run.sh: the three common routes on
// 127.0.0.1:$PORT (default 38010), JS handlers. See bench/peers-extra.sh.
import { App, Response } from '../../dist/index.js'

const HELLO = 'Hello, World!'
const app = new App()
app.get('/plaintext', () => new Response(HELLO, { headers: { 'content-type': 'text/plain' } }))
app.get('/json', () => Response.json({ message: HELLO }))
app.get('/users/{id}', (req) => Response.json({ id: req.pathParams.id }))
const server = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 38010) })
console.log(`httpy listening on ${server.url}`)
const stop = () => void server.close({ timeout: 1 }).then(() => process.exit(0))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
