#!/usr/bin/env bash
set -euo pipefail
# holder.sh start|stop|status — the fleet's tmux holder session.
#
# Run by mosaic-tmux-holder.service with H/fleet/agents/_holder.env loaded:
#   MOSAIC_TMUX_SOCKET     tmux -L name; empty or unset = the default tmux server
#   MOSAIC_HOLDER_SESSION  holder session name (default _holder)
#
# start: creates the holder session unless it exists (exact target), so the
#        socket's tmux server outlives individual agents.
# stop:  on a named socket, kills that socket's server (and only it); on the
#        default server, kills only the holder session and leaves every other
#        session -- the operator's -- alone.

prog=holder.sh
die() {
  printf '%s: %s\n' "$prog" "$*" >&2
  exit 1
}

action=${1:-}
socket=${MOSAIC_TMUX_SOCKET:-}
# `-L default` is the operator's own default server: never treat it as the
# fleet's (stopping would kill the operator's sessions).
[[ $socket != default ]] || die "MOSAIC_TMUX_SOCKET=default names your own tmux server; leave it empty for the default server, or pick another name"
session=${MOSAIC_HOLDER_SESSION:-_holder}
[[ $session =~ ^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$ ]] || die "invalid holder session name '$session'"

tmux_cmd=(tmux -u)  # -u: UTF-8 whatever the locale (LANG unset turns -F tabs into _)
if [[ -n $socket ]]; then
  tmux_cmd+=(-L "$socket")
fi
where="socket ${socket:-default}"

case $action in
  start)
    if "${tmux_cmd[@]}" has-session -t "=$session" 2>/dev/null; then
      printf '%s: %s already holds %s\n' "$prog" "$session" "$where"
      exit 0
    fi
    "${tmux_cmd[@]}" new-session -d -s "$session" -- \
      bash -c 'trap "exit 0" HUP TERM; while :; do sleep 3600 & wait $!; done' ||
      die "tmux could not create $session on $where"
    if [[ -n $socket ]]; then
      # A fleet server of our own: pin the indexes so '=NAME:0.0' addresses
      # every agent's pane whatever the operator's tmux.conf says.
      "${tmux_cmd[@]}" set-option -g base-index 0 \; set-option -gw pane-base-index 0 >/dev/null
    fi
    printf '%s: %s holds %s\n' "$prog" "$session" "$where"
    ;;
  stop)
    if [[ -n $socket ]]; then
      if "${tmux_cmd[@]}" kill-server 2>/dev/null; then
        printf '%s: stopped the tmux server on %s\n' "$prog" "$where"
      else
        printf '%s: no tmux server on %s\n' "$prog" "$where"
      fi
    elif "${tmux_cmd[@]}" has-session -t "=$session" 2>/dev/null; then
      "${tmux_cmd[@]}" kill-session -t "=$session"
      printf '%s: removed %s from the default tmux server\n' "$prog" "$session"
    else
      printf '%s: %s not present on the default tmux server\n' "$prog" "$session"
    fi
    ;;
  status)
    if "${tmux_cmd[@]}" has-session -t "=$session" 2>/dev/null; then
      printf '%s: %s present on %s\n' "$prog" "$session" "$where"
    else
      printf '%s: %s absent on %s\n' "$prog" "$session" "$where"
      exit 3
    fi
    ;;
  *)
    printf 'usage: %s start|stop|status\n' "$prog" >&2
    exit 2
    ;;
esac
