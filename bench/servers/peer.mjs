// HTTPy as a peer of ../shared/peers/run.sh and idle.sh: the three common
// routes on 127.0.0.1:$PORT (default 38010), JS handlers. idle.sh exports
// IDLE_TIMEOUT_S, the seconds idle keep-alive connections must be kept:
// that is keepAliveTimeout (default 5 s otherwise, as for node:http).
// See bench/peers-extra.sh and bench/peers-idle-extra.sh.
import { App, Response } from '../../dist/index.js'
import { listenPeer } from './peer-listen.mjs'

const HELLO = 'Hello, World!'
const app = new App()
app.get('/plaintext', () => new Response(HELLO, { headers: { 'content-type': 'text/plain' } }))
app.get('/json', () => Response.json({ message: HELLO }))
app.get('/users/{id}', (req) => Response.json({ id: req.pathParams.id }))
const idle = process.env.IDLE_TIMEOUT_S
await listenPeer(app, 'httpy', 38010, idle ? { keepAliveTimeout: Number(idle) } : {})
