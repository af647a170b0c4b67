#!/usr/bin/env bash
# HTTPy beside the peers kit's servers, on any of the kit's four workloads:
#
#   bash bench/peers.sh                      # all four (run, ws, idle, static) in turn
#   bash bench/peers.sh ws static            # some of them
#   ONLY=httpy,uws bash bench/peers.sh ws    # the kit's ONLY= (and every other knob) pass through
#
#   run    = run.sh     (/plaintext, /json, /users/42 with wrk; h2c /plaintext)  bench/peers-extra.sh
#   ws     = ws.sh      (WebSocket echo throughput)                               bench/peers-ws-extra.sh
#   idle   = idle.sh    (memory per idle keep-alive connection)                   bench/peers-idle-extra.sh
#   static = static.sh  (a 100 KB file from disk)                                 bench/peers-static-extra.sh
#
# The kit is looked for beside this checkout (../shared/peers from the
# project's root), or wherever PEERS_KIT points. The knobs of the kit's
# scripts differ (DURATION is "8s" for run/static and 8 for ws; CONNS is
# 64 for run/ws/static and 10000 for idle): set them for one workload at a
# time. Needs the built package (`npm run build`, a release build for numbers).
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIT=${PEERS_KIT:-$ROOT/../shared/peers}

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

[ $# -gt 0 ] || set -- run ws idle static
for w in "$@"; do
  case $w in run|ws|idle|static) ;; -h|--help) usage; exit 0 ;; *) echo "unknown workload: $w" >&2; usage >&2; exit 2 ;; esac
done
[ -f "$KIT/run.sh" ] || { echo "peers kit not found at $KIT (set PEERS_KIT)" >&2; exit 1; }
[ -f "$ROOT/dist/index.js" ] || { echo "dist/ is missing: run npm run build first" >&2; exit 1; }
KIT="$(cd "$KIT" && pwd)"

rc=0
for w in "$@"; do
  echo "### $w" >&2
  case $w in
    run)    PEERS_EXTRA="$ROOT/bench/peers-extra.sh" bash "$KIT/run.sh" ;;
    ws)     PEERS_WS_EXTRA="$ROOT/bench/peers-ws-extra.sh" bash "$KIT/ws.sh" ;;
    idle)   PEERS_IDLE_EXTRA="$ROOT/bench/peers-idle-extra.sh" bash "$KIT/idle.sh" ;;
    static) PEERS_STATIC_EXTRA="$ROOT/bench/peers-static-extra.sh" bash "$KIT/static.sh" ;;
  esac || rc=$?
done
exit "$rc"
