#!/usr/bin/env bash
set -euo pipefail
# agent-send.sh — deliver one message from SOURCE to an agent's tmux pane.
#
#   agent-send.sh [-L SOCKET] [-H USER@HOST] -S SOURCE -s SESSION -m MESSAGE
#
# Delivers exactly "[from SOURCE] MESSAGE" to the pane '=SESSION:0.0' by
# bracketed paste (the text on stdin of `tmux load-buffer -`, then
# `paste-buffer -p -d`), waits MOSAIC_SEND_ENTER_DELAY seconds (default 0.2),
# then sends Enter as a separate key. (With -H the remote side types it as
# literal keys, send-keys -l.) It does not look at the screen first: `mosaic
# agent send` is the checked path (it refuses when the agent is not at its
# prompt). Control characters in SOURCE or MESSAGE
# (newlines, tabs, escapes) are sent as single spaces, so one message is always
# one line. -L is passed to tmux only when SOCKET is non-empty (no -L = the
# default tmux server). -H runs the same tmux commands on USER@HOST over ssh.
# SESSION may be given as NAME or =NAME; the target is always exact.
# Exit status: 0 delivered, 1 no such session / tmux or ssh failed, 2 usage.

prog=agent-send.sh
usage() {
  printf 'usage: %s [-L SOCKET] [-H USER@HOST] -S SOURCE -s SESSION -m MESSAGE\n' "$prog"
}
die() {
  printf '%s: %s\n' "$prog" "$*" >&2
  exit "${2:-1}"
}
usage_error() {
  printf '%s: %s\n' "$prog" "$1" >&2
  usage >&2
  exit 2
}

socket=
host=
source_label=
session=
message=
have_message=0
while getopts ':L:H:S:s:m:h' opt; do
  case $opt in
    L) socket=$OPTARG ;;
    H) host=$OPTARG ;;
    S) source_label=$OPTARG ;;
    s) session=$OPTARG ;;
    m)
      message=$OPTARG
      have_message=1
      ;;
    h)
      usage
      exit 0
      ;;
    :) usage_error "option -$OPTARG needs a value" ;;
    *) usage_error "unknown option -$OPTARG" ;;
  esac
done
shift $((OPTIND - 1))
(($# == 0)) || usage_error "unexpected argument '$1'"
[[ -n $source_label ]] || usage_error "-S SOURCE is required"
[[ -n $session ]] || usage_error "-s SESSION is required"
((have_message)) || usage_error "-m MESSAGE is required"
session=${session#=}
[[ $session =~ ^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$ ]] ||
  usage_error "invalid session name '$session'"
if [[ -n $socket && ! $socket =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]]; then
  usage_error "invalid socket name '$socket'"
fi
if [[ -n $host && ! $host =~ ^([A-Za-z0-9._-]+@)?[A-Za-z0-9][A-Za-z0-9.:-]*$ ]]; then
  usage_error "invalid host '$host' (expected USER@HOST)"
fi
delay=${MOSAIC_SEND_ENTER_DELAY:-0.2}
[[ $delay =~ ^[0-9]+([.][0-9]+)?$ ]] || delay=0.2

text="[from $source_label] $message"
text=${text//[[:cntrl:]]/ }

tmux_cmd=(tmux)
if [[ -n $socket ]]; then
  tmux_cmd+=(-L "$socket")
fi
target="=$session:0.0"
where="socket ${socket:-default}${host:+ on $host}"

if [[ -z $host ]]; then
  "${tmux_cmd[@]}" has-session -t "=$session" 2>/dev/null ||
    die "no tmux session '$session' on $where"
  buffer="mosaic-send-$$"
  printf '%s' "$text" | "${tmux_cmd[@]}" load-buffer -b "$buffer" - ||
    die "could not load the message into a tmux buffer on $where"
  "${tmux_cmd[@]}" paste-buffer -p -d -b "$buffer" -t "$target" ||
    die "could not paste into $target on $where"
  sleep "$delay"
  "${tmux_cmd[@]}" send-keys -t "$target" Enter ||
    die "could not send Enter to $target on $where"
  exit 0
fi

# Remote: one ssh call; every word is quoted for the remote shell. A trailing
# ';' would end a send-keys argument list: escape it.
if [[ $text == *';' ]]; then
  text="${text%';'}\\;"
fi
q() { printf '%q ' "$@"; }
remote="$(q "${tmux_cmd[@]}" has-session -t "=$session") 2>/dev/null || exit 3; "
remote+="$(q "${tmux_cmd[@]}" send-keys -t "$target" -l -- "$text") || exit 4; "
remote+="$(q sleep "$delay"); "
remote+="$(q "${tmux_cmd[@]}" send-keys -t "$target" Enter) || exit 4"
rc=0
ssh -o BatchMode=yes -T "$host" -- "$remote" </dev/null || rc=$?
case $rc in
  0) exit 0 ;;
  3) die "no tmux session '$session' on $where" ;;
  4) die "could not type into $target on $where" ;;
  *) die "ssh to $host failed (exit $rc)" ;;
esac
