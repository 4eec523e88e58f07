#!/usr/bin/env bash
set -euo pipefail
# send-message.sh — type a raw line into a tmux pane, without a source tag.
#
#   send-message.sh [-L SOCKET] [-H USER@HOST] -t TARGET -m MESSAGE
#
# TARGET is a session (NAME) or a pane (NAME:W.P), with or without a leading
# '='; it is always addressed exactly ('=NAME', '=NAME:W.P'), never by prefix.
# The message goes in by bracketed paste (its text on stdin of `tmux
# load-buffer -`, then `paste-buffer -p -d`; with -H typed literally on the
# remote side, send-keys -l; control characters become spaces), then Enter
# as a separate key after MOSAIC_SEND_ENTER_DELAY seconds (default 0.2). -L only when SOCKET is non-empty; -H runs it on USER@HOST
# over ssh. For agent-to-agent messages use agent-send.sh, which adds the
# "[from SOURCE]" tag receivers rely on.

prog=send-message.sh
usage() {
  printf 'usage: %s [-L SOCKET] [-H USER@HOST] -t TARGET -m MESSAGE\n' "$prog"
}
usage_error() {
  printf '%s: %s\n' "$prog" "$1" >&2
  usage >&2
  exit 2
}
die() {
  printf '%s: %s\n' "$prog" "$*" >&2
  exit 1
}

socket=
host=
target=
message=
have_message=0
while getopts ':L:H:t:m:h' opt; do
  case $opt in
    L) socket=$OPTARG ;;
    H) host=$OPTARG ;;
    t) target=$OPTARG ;;
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
[[ -n $target ]] || usage_error "-t TARGET is required"
((have_message)) || usage_error "-m MESSAGE is required"
target=${target#=}
[[ $target =~ ^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}(:[0-9]+(\.[0-9]+)?)?$ ]] ||
  usage_error "invalid target '$target' (NAME or NAME:WINDOW.PANE)"
session=${target%%:*}
if [[ $target != *:* ]]; then
  target=$target:
fi
if [[ -n $socket && ! $socket =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]]; then
  usage_error "invalid socket name '$socket'"
fi
if [[ -n $host && ! $host =~ ^([A-Za-z0-9._-]+@)?[A-Za-z0-9][A-Za-z0-9.:-]*$ ]]; then
  usage_error "invalid host '$host' (expected USER@HOST)"
fi
delay=${MOSAIC_SEND_ENTER_DELAY:-0.2}
[[ $delay =~ ^[0-9]+([.][0-9]+)?$ ]] || delay=0.2

text=${message//[[:cntrl:]]/ }

tmux_cmd=(tmux)
if [[ -n $socket ]]; then
  tmux_cmd+=(-L "$socket")
fi
where="socket ${socket:-default}${host:+ on $host}"

if [[ -z $host ]]; then
  "${tmux_cmd[@]}" has-session -t "=$session" 2>/dev/null ||
    die "no tmux session '$session' on $where"
  buffer="mosaic-send-$$"
  printf '%s' "$text" | "${tmux_cmd[@]}" load-buffer -b "$buffer" - ||
    die "could not load the message into a tmux buffer on $where"
  "${tmux_cmd[@]}" paste-buffer -p -d -b "$buffer" -t "=$target" ||
    die "could not paste into =$target on $where"
  sleep "$delay"
  "${tmux_cmd[@]}" send-keys -t "=$target" Enter ||
    die "could not send Enter to =$target on $where"
  exit 0
fi

# A trailing ';' would end the remote send-keys argument list: escape it.
if [[ $text == *';' ]]; then
  text="${text%';'}\\;"
fi
q() { printf '%q ' "$@"; }
remote="$(q "${tmux_cmd[@]}" has-session -t "=$session") 2>/dev/null || exit 3; "
remote+="$(q "${tmux_cmd[@]}" send-keys -t "=$target" -l -- "$text") || exit 4; "
remote+="$(q sleep "$delay"); "
remote+="$(q "${tmux_cmd[@]}" send-keys -t "=$target" Enter) || exit 4"
rc=0
ssh -o BatchMode=yes -T "$host" -- "$remote" </dev/null || rc=$?
case $rc in
  0) exit 0 ;;
  3) die "no tmux session '$session' on $where" ;;
  4) die "could not type into =$target on $where" ;;
  *) die "ssh to $host failed (exit $rc)" ;;
esac
