#!/usr/bin/env bash
set -euo pipefail
# start-agent-session.sh NAME — start one fleet agent in its own tmux session.
#
# Run by mosaic-agent@NAME.service (systemd loads H/fleet/agents/NAME.env into
# the environment first); by hand it loads that file itself. Idempotent: when
# the session NAME already exists on the socket it does nothing and exits 0.
#
# Environment (see H/fleet/agents/NAME.env):
#   MOSAIC_HOME                framework home H (default ${XDG_CONFIG_HOME:-~/.config}/mosaic)
#   MOSAIC_AGENT_RUNTIME       claude | codex | pi | opencode
#   MOSAIC_AGENT_MODEL         passed as --model when non-empty
#   MOSAIC_AGENT_COMMAND       full command line that replaces the runtime command
#   MOSAIC_AGENT_WORKDIR       start directory (a leading ~ is the home dir; empty = home)
#   MOSAIC_AGENT_CLASS, MOSAIC_TENANT_ID   exported to the agent as-is
#   MOSAIC_TMUX_SOCKET         tmux -L name; empty = the default tmux server (no -L)
#   MOSAIC_HEARTBEAT_INTERVAL  seconds between heartbeats (default 15)
#
# The session's only pane runs tools/fleet/heartbeat, which execs the runtime:
# the pane process is the runtime itself and H/fleet/run/NAME.hb stays fresh.
# The pane's output is kept in H/fleet/run/NAME.log (tools/fleet/pane-log).
# Under systemd it is run by agent-supervisor, which sets MOSAIC_AGENT_UNIT so
# the pane joins the agent's unit (see tools/fleet/heartbeat).

prog=start-agent-session.sh
die() {
  printf '%s: %s\n' "$prog" "$*" >&2
  exit 1
}

name=${1:-${MOSAIC_AGENT_NAME:-}}
[[ -n $name ]] || die "usage: $prog NAME"
[[ $name =~ ^[a-z0-9][a-z0-9_-]{0,62}$ ]] ||
  die "invalid agent name '$name' (allowed: [a-z0-9][a-z0-9_-]{0,62})"

H=${MOSAIC_HOME:-${XDG_CONFIG_HOME:-$HOME/.config}/mosaic}
env_file=$H/fleet/agents/$name.env

# load_env_file FILE: KEY=value lines as systemd's EnvironmentFile reads them
# (comments and blank lines skipped, one pair of surrounding quotes removed).
# Only MOSAIC_* keys are taken.
load_env_file() {
  local line key value
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line#"${line%%[![:space:]]*}"}
    [[ -z $line || $line == '#'* || $line == ';'* ]] && continue
    [[ $line == *=* ]] || continue
    key=${line%%=*}
    value=${line#*=}
    key=${key%"${key##*[![:space:]]}"}
    [[ $key =~ ^MOSAIC_[A-Z0-9_]+$ ]] || continue
    if [[ $value == \"*\" && ${#value} -ge 2 ]] || [[ $value == \'*\' && ${#value} -ge 2 ]]; then
      value=${value:1:${#value}-2}
    fi
    export "$key=$value"
  done <"$1"
}

# Started by hand (not by systemd): take the agent's settings from its env file.
if [[ ${MOSAIC_AGENT_NAME:-} != "$name" ]]; then
  [[ -r $env_file ]] || die "no environment for agent '$name': $env_file is missing"
  load_env_file "$env_file"
  H=${MOSAIC_HOME:-$H}
fi

socket=${MOSAIC_TMUX_SOCKET:-}
runtime=${MOSAIC_AGENT_RUNTIME:-}
model=${MOSAIC_AGENT_MODEL:-}
agent_command=${MOSAIC_AGENT_COMMAND:-}
interval=${MOSAIC_HEARTBEAT_INTERVAL:-15}
if ! [[ $interval =~ ^[0-9]+$ ]] || ((interval < 1)); then
  interval=15
fi

tmux_cmd=(tmux -u)  # -u: UTF-8 whatever the locale (LANG unset turns -F tabs into _)
if [[ -n $socket ]]; then
  tmux_cmd+=(-L "$socket")
fi
where="socket ${socket:-default}"

if "${tmux_cmd[@]}" has-session -t "=$name" 2>/dev/null; then
  printf '%s: session %s already running on %s\n' "$prog" "$name" "$where"
  exit 0
fi

# Runtimes installed per user (npm prefix, pipx, ...) usually land here.
if [[ -d $HOME/.local/bin && :$PATH: != *":$HOME/.local/bin:"* ]]; then
  PATH=$HOME/.local/bin:$PATH
  export PATH
fi

if [[ -n $agent_command ]]; then
  # The operator's own command line; bash execs a simple command in place.
  cmd=(bash -c "$agent_command")
else
  case $runtime in
    claude | codex | pi | opencode) ;;
    '') die "MOSAIC_AGENT_RUNTIME is not set for agent '$name' (in $env_file)" ;;
    *) die "unknown runtime '$runtime' for agent '$name' (claude, codex, pi or opencode)" ;;
  esac
  command -v "$runtime" >/dev/null 2>&1 ||
    die "runtime '$runtime' for agent '$name' is not on PATH ($PATH); install it or set MOSAIC_AGENT_COMMAND"
  cmd=("$runtime")
  if [[ -n $model ]]; then
    cmd+=(--model "$model")
  fi
fi

workdir=${MOSAIC_AGENT_WORKDIR:-}
case $workdir in
  '' | \~) workdir=$HOME ;;
  \~/*) workdir=$HOME/${workdir#\~/} ;;
esac
[[ -d $workdir ]] || die "working directory '$workdir' of agent '$name' does not exist"

session_env=(
  -e "MOSAIC_HOME=$H"
  -e "MOSAIC_AGENT_NAME=$name"
  -e "MOSAIC_AGENT_RUNTIME=$runtime"
  -e "MOSAIC_AGENT_CLASS=${MOSAIC_AGENT_CLASS:-}"
  -e "MOSAIC_AGENT_MODEL=$model"
  -e "MOSAIC_AGENT_WORKDIR=$workdir"
  -e "MOSAIC_TMUX_SOCKET=$socket"
  -e "MOSAIC_TENANT_ID=${MOSAIC_TENANT_ID:-}"
  -e "MOSAIC_HEARTBEAT_INTERVAL=$interval"
  -e "MOSAIC_AGENT_UNIT=${MOSAIC_AGENT_UNIT:-}"
  -e "PATH=$PATH"
)
# Every other key of the agent's env file (an API key, a runtime setting) is
# passed on too: the pane is spawned by the tmux server, not by this script,
# so it would otherwise only see the server's environment. systemd has
# already parsed the file into this script's environment.
if [[ -r $env_file ]]; then
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line#"${line%%[![:space:]]*}"}
    [[ $line == *=* && $line != '#'* && $line != ';'* ]] || continue
    key=${line%%=*}
    key=${key%"${key##*[![:space:]]}"}
    [[ $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    case $key in
      PATH | MOSAIC_HOME | MOSAIC_AGENT_NAME | MOSAIC_AGENT_RUNTIME | MOSAIC_AGENT_CLASS | \
        MOSAIC_AGENT_MODEL | MOSAIC_AGENT_WORKDIR | MOSAIC_TMUX_SOCKET | MOSAIC_TENANT_ID | \
        MOSAIC_HEARTBEAT_INTERVAL | MOSAIC_AGENT_UNIT) continue ;;
    esac
    if [[ -n ${!key+set} ]]; then
      session_env+=(-e "$key=${!key}")
    fi
  done <"$env_file"
fi

# The pane's output also goes to H/fleet/run/NAME.log (tools/fleet/pane-log:
# rotated, 1 MiB x 3), so the runtime's last words outlive it (`mosaic agent
# logs NAME`). pipe-pane is queued in the same tmux command as new-session, so
# it is in place before the server reads the pane's first output.
pipe_args=()
if mkdir -p -- "$H/fleet/run" 2>/dev/null && [[ -x $H/tools/fleet/pane-log ]]; then
  printf -v pipe 'exec %q %q' "$H/tools/fleet/pane-log" "$H/fleet/run/$name.log"
  pipe_args=(\; pipe-pane -o -t "=$name:" "$pipe")
fi
"${tmux_cmd[@]}" new-session -d -s "$name" -c "$workdir" -x 200 -y 50 "${session_env[@]}" -- \
  "$H/tools/fleet/heartbeat" --interval "$interval" "$name" -- "${cmd[@]}" "${pipe_args[@]}" ||
  die "tmux could not create session $name on $where"

"${tmux_cmd[@]}" has-session -t "=$name" 2>/dev/null ||
  die "session $name on $where ended right after it started; try: $H/tools/fleet/heartbeat $name -- ${cmd[*]}"

# The agent's pane is always =NAME:0.0, whatever base-index or
# pane-base-index the operator's tmux.conf sets on a server mosaic did not
# configure (a per-agent socket, the default server).
"${tmux_cmd[@]}" move-window -s "=$name:^" -t "=$name:0" 2>/dev/null || true
"${tmux_cmd[@]}" set-option -w -t "=$name:0" pane-base-index 0 >/dev/null 2>&1 || true
printf '%s: started %s (%s) on %s\n' "$prog" "$name" "${agent_command:-${cmd[*]}}" "$where"
