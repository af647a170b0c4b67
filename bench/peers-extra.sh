# HTTPy as a peer for the peers kit's run.sh (`server NAME PORT MODES --
# COMMAND`; the command runs from the kit's work folder, so the path must be
# absolute). This file computes that path from its own location, so it can
# be passed as it is (after `npm run build`):
#
#   PEERS_EXTRA="$PWD/bench/peers-extra.sh" bash ../shared/peers/run.sh
#
# Run directly (`bash bench/peers-extra.sh`), it prints the line instead.
_httpy_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "server httpy 38010 wrk,h2 -- node $_httpy_root/bench/servers/peer.mjs"
else
  server httpy 38010 wrk,h2 -- node "$_httpy_root/bench/servers/peer.mjs"
fi
unset _httpy_root
