# HTTPy for the peers kit's static.sh (GET /$STATIC_NAME from $STATIC_DIR):
# bench/servers/peer-static.mjs, serveStatic on $STATIC_DIR, port 38310.
# Pass this file as it is (after `npm run build`), or use bench/peers.sh:
#
#   PEERS_STATIC_EXTRA="$PWD/bench/peers-static-extra.sh" bash ../shared/peers/static.sh
#
# Run directly (`bash bench/peers-static-extra.sh`), it prints the line it adds.
# shellcheck source=peers-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/peers-lib.sh"
httpy_peer httpy 38310 peer-static.mjs
