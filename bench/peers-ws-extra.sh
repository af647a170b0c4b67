# HTTPy for the peers kit's ws.sh (WebSocket text echo on /ws):
# bench/servers/peer-ws.mjs on port 38110. Pass this file as it is (after
# `npm run build`), or use bench/peers.sh:
#
#   PEERS_WS_EXTRA="$PWD/bench/peers-ws-extra.sh" bash ../shared/peers/ws.sh
#
# Run directly (`bash bench/peers-ws-extra.sh`), it prints the line it adds.
# shellcheck source=peers-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/peers-lib.sh"
httpy_peer httpy 38110 peer-ws.mjs
