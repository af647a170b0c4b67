// HTTPy as a peer of ../shared/peers/static.sh: serveStatic on $STATIC_DIR
// at the root, so GET /$STATIC_NAME is answered by the Rust core from the
// file (default options: ETag, Last-Modified, ranges), on 127.0.0.1:$PORT
// (default 38310). See bench/peers-static-extra.sh.
import { App } from '../../dist/index.js'
import { listenPeer } from './peer-listen.mjs'

const dir = process.env.STATIC_DIR
if (!dir) throw new Error('STATIC_DIR must name the folder to serve')
const app = new App()
app.serveStatic('/', dir)
await listenPeer(app, 'httpy-static', 38310)
