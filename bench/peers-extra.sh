# HTTPy for the peers kit's run.sh (/plaintext, /json, /users/42 with wrk,
# /plaintext with h2load h2c): bench/servers/peer.mjs on port 38010, the
# route cache (peer-native.mjs, 38011), a fetch handler (peer-fetch.mjs,
# 38012) and the kit's Hono app on serve({ fetch }) (peer-hono.mjs, 38013).
# Pass this file as it is (after `npm run build`), or use bench/peers.sh:
#
#   PEERS_EXTRA="$PWD/bench/peers-extra.sh" bash ../shared/peers/run.sh
#
# Run directly (`bash bench/peers-extra.sh`), it prints the line it adds.
# shellcheck source=peers-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/peers-lib.sh"
httpy_peer httpy 38010 wrk,h2 peer.mjs
httpy_peer httpy-native 38011 wrk,h2 peer-native.mjs
httpy_peer httpy-fetch 38012 wrk,h2 peer-fetch.mjs
httpy_peer httpy-hono 38013 wrk,h2 peer-hono.mjs
