# shellcheck shell=bash
# Sourced by the bench/peers-*extra.sh files, which the peers kit's scripts
# source in turn. `httpy_peer NAME PORT [MODES] SCRIPT` adds the kit's line
#
#   server NAME PORT [MODES] -- node /abs/path/bench/servers/SCRIPT
#
# The kit runs the command from its own work folder, so the path must be
# absolute: it is computed here from this file's location (and quoted, for
# the kit's `eval`). Outside the kit (no `server` function defined, e.g.
# `bash bench/peers-ws-extra.sh`) the line is printed instead.
httpy_peer() {
  local script=${*: -1} root path
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  path=$(printf %q "$root/bench/servers/$script")
  if declare -F server >/dev/null; then
    server "${@:1:$#-1}" -- node "$path"
  else
    echo "server ${*:1:$#-1} -- node $path"
  fi
}
