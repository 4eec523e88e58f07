# Completes $LINE in a real interactive zsh (zsh/zpty) with compinit and
# $ZFUNC first on fpath (where the test put `mosaic completions zsh` as
# _mosaic), and prints every batch of matches the completion added, as
# "HITS=a|b|c=END" (compadd is wrapped to print them: `compadd -O`), then
# "DONE=COMPLETION" once the completion has finished.
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1='%% '; fpath=($ZFUNC \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z 'compadd() { local -a __h; builtin compadd -O __h "$@"; (( $#__h )) && print -r -- "HIT${:-S}=${(j:|:)__h}=END"; comppostfuncs=(__capture_done); builtin compadd "$@" }'
# compsys calls $comppostfuncs once the whole completion has finished, so
# every batch is in before DONE=COMPLETION (the completion adds its matches
# in several compadd calls; waiting for the first one lost the later ones
# on a loaded machine).
zpty -w z '__capture_done() { print -r -- "DON${:-E}=COMPLETION" }'
zpty -wn z "$LINE"$'\t'
local out chunk i
for i in {1..400}; do
  while zpty -r -t z chunk; do out+=$chunk; done
  [[ $out == *DONE=COMPLETION* ]] && break
  sleep 0.05
done
while zpty -r -t z chunk; do out+=$chunk; done
print -r -- "$out"
zpty -d z
