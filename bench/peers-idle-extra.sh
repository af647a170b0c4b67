# HTTPy for the peers kit's idle.sh (memory per idle keep-alive connection):
# bench/servers/peer.mjs on port 38210, whose keepAliveTimeout follows the
# kit's $IDLE_TIMEOUT_S. Pass this file as it is (after `npm run build`), or
# use bench/peers.sh:
#
#   PEERS_IDLE_EXTRA="$PWD/bench/peers-idle-extra.sh" bash ../shared/peers/idle.sh
#
# Run directly (`bash bench/peers-idle-extra.sh`), it prints the line it adds.
# shellcheck source=peers-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/peers-lib.sh"
httpy_peer httpy 38210 peer.mjs
