#!/usr/bin/env bash
set -euo pipefail
# stop-agent-session.sh NAME — end one fleet agent's tmux session.
#
# Run by mosaic-agent@NAME.service on stop. Kills exactly the session NAME
# (target "=NAME", never a prefix match) on MOSAIC_TMUX_SOCKET (empty = the
# default tmux server, no -L) and never the server itself. A session that is
# already gone is not an error.
#
# Under systemd ($MAINPID set: the agent-supervisor watcher) it first ends the
# watcher (SIGTERM, waits up to 5 s) so the runtime is not restarted while it
# stops; systemd then ends whatever is left in the unit's cgroup
# (KillMode=control-group).

prog=stop-agent-session.sh
name=${1:-${MOSAIC_AGENT_NAME:-}}
if ! [[ $name =~ ^[a-z0-9][a-z0-9_-]{0,62}$ ]]; then
  printf '%s: usage: %s NAME (a valid agent name)\n' "$prog" "$prog" >&2
  exit 1
fi

H=${MOSAIC_HOME:-${XDG_CONFIG_HOME:-$HOME/.config}/mosaic}
env_file=$H/fleet/agents/$name.env
socket=${MOSAIC_TMUX_SOCKET-}
# By hand (not under systemd): read the socket from the agent's env file.
if [[ ${MOSAIC_AGENT_NAME:-} != "$name" && -r $env_file ]]; then
  socket=
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line == MOSAIC_TMUX_SOCKET=* ]]; then
      socket=${line#MOSAIC_TMUX_SOCKET=}
      socket=${socket#[\"\']}
      socket=${socket%[\"\']}
    fi
  done <"$env_file"
fi

if [[ ${MAINPID:-} =~ ^[1-9][0-9]*$ ]] && kill -TERM "$MAINPID" 2>/dev/null; then
  for _ in {1..50}; do
    kill -0 "$MAINPID" 2>/dev/null || break
    sleep 0.1
  done
fi

tmux_cmd=(tmux -u)  # -u: UTF-8 whatever the locale (LANG unset turns -F tabs into _)
if [[ -n $socket ]]; then
  tmux_cmd+=(-L "$socket")
fi

# Read-only viewers (`mosaic agent watch`) are sessions grouped with the
# agent's; they share its window, so the runtime only ends once they go too.
viewers=()
while IFS=$'\t' read -r s group; do
  if [[ $group == "$name" && $s != "$name" ]]; then
    viewers+=("$s")
  fi
done < <("${tmux_cmd[@]}" list-sessions -F $'#{session_name}\t#{session_group}' 2>/dev/null || true)
for v in "${viewers[@]}"; do
  "${tmux_cmd[@]}" kill-session -t "=$v" 2>/dev/null || true
done

if "${tmux_cmd[@]}" has-session -t "=$name" 2>/dev/null; then
  "${tmux_cmd[@]}" kill-session -t "=$name"
  printf '%s: stopped %s on socket %s\n' "$prog" "$name" "${socket:-default}"
else
  printf '%s: session %s not running on socket %s\n' "$prog" "$name" "${socket:-default}"
fi
