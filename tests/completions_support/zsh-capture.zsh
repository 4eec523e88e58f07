# Completes $LINE in a real interactive zsh (zsh/zpty) with compinit and
# $ZFUNC first on fpath (where the test put `mosaic completions zsh` as
# _mosaic), and prints every batch of matches the completion added, as
# "HITS=a|b|c=END" (compadd is wrapped to print them: `compadd -O`).
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1='%% '; fpath=($ZFUNC \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z 'compadd() { local -a __h; builtin compadd -O __h "$@"; (( $#__h )) && print -r -- "HIT${:-S}=${(j:|:)__h}=END"; builtin compadd "$@" }'
zpty -wn z "$LINE"$'\t'
local out chunk i
for i in {1..200}; do
  while zpty -r -t z chunk; do out+=$chunk; done
  [[ $out == *HITS=*=END* ]] && break
  sleep 0.05
done
while zpty -r -t z chunk; do out+=$chunk; done
print -r -- "$out"
zpty -d z
