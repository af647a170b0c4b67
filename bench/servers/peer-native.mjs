// HTTPy as a peer of ../shared/peers/run.sh, with the routes whose answer
// does not depend on anything but the URL served from the native route
// cache (`{ cache: { ttl } }`): /plaintext and /users/{id} are computed by
// their JS handler once per URL and then answered in Rust without entering
// JavaScript, which is what the kit's nginx `return 200` rows measure.
// /json stays a JS handler, because the kit asks for it to be serialized on
// every request. Listens on 127.0.0.1:$PORT (default 38011); see
// bench/peers-extra.sh.
import { App, Response } from '../../dist/index.js'
import { listenPeer } from './peer-listen.mjs'

const HELLO = 'Hello, World!'
const cache = { cache: { ttl: 3600 } }
const app = new App()
app.get('/plaintext', () => new Response(HELLO, { headers: { 'content-type': 'text/plain' } }), cache)
app.get('/json', () => Response.json({ message: HELLO }))
app.get('/users/{id}', (req) => Response.json({ id: req.pathParams.id }), cache)
await listenPeer(app, 'httpy-native', 38011)
