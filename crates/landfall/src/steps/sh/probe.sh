# What a host holds: the probe, and how it reads `current` and the
# releases.

# landfall_probe lf_sbom lf_detail PATH...: for each path (numbered from
# 0), the current release, the complete releases (newest first), the lock,
# if one is held, and the release the log last confirmed; with lf_detail=1
# also each release's provenance and the tail of the log; with lf_sbom=1
# (0 when it is not set) the current release's bill of materials, a line
# at a time, unless a link takes the file's place.
landfall_probe() {
  i=0
  for p in "$@"; do
    landfall_current "$p"
    printf 'current\t%s\t%s\n' "$i" "$c"
    if [ -d "$p/releases" ]; then
      for r in $(landfall_releases "$p/releases"); do
        printf 'release\t%s\t%s\n' "$i" "$r"
        if [ "$lf_detail" = 1 ] && [ -f "$p/releases/$r/.landfall-release" ]; then
          printf 'provenance\t%s\t%s\t%s\n' "$i" "$r" "$(head -n 1 "$p/releases/$r/.landfall-release")"
        fi
      done
    fi
    b="$p/releases/$c/.landfall-sbom.cdx.json"
    if [ "${lf_sbom:-0}" = 1 ] && [ -n "$c" ] && [ -f "$b" ] && [ ! -L "$b" ]; then
      while IFS= read -r line || [ -n "$line" ]; do
        printf 'sbom\t%s\t%s\n' "$i" "$line"
      done <"$b"
    fi
    if [ -f "$p/.landfall/lock" ]; then
      printf 'lock\t%s\t%s\n' "$i" "$(head -n 1 "$p/.landfall/lock")"
    fi
    # The release the log last confirmed running (see landfall_confirmed),
    # as `.landfall/confirmed` keeps it, unless the log was written after
    # it (by a landfall that did not keep it).
    if [ -f "$p/.landfall/log" ]; then
      k="$p/.landfall/confirmed"
      # shellcheck disable=SC3013 # See landfall_current.
      if [ -f "$k" ] && [ ! -L "$k" ] && [ ! "$p/.landfall/log" -nt "$k" ] 2>/dev/null &&
        read -r k <"$k" && landfall_hex "$k"; then
        :
      else
        k=$(landfall_confirmed "$p")
      fi
      printf 'confirmed\t%s\t%s\n' "$i" "$k"
    fi
    if [ "$lf_detail" = 1 ]; then
      landfall_service_state "$i" "$p"
    fi
    if [ "$lf_detail" = 1 ] && [ -f "$p/.landfall/log" ]; then
      tail -n 200 "$p/.landfall/log" | while IFS= read -r line; do
        printf 'log\t%s\t%s\n' "$i" "$line"
      done
    fi
    i=$((i + 1))
  done
}

# landfall_current PATH: sets c to the name of the release PATH's
# `current` leads to, empty if there is none. The shell finds it itself
# when `current` leads to a release's directory, readlink otherwise (a
# link that leads nowhere still names its release). `-ef` and `-nt`
# (used here and by the probe) are POSIX since its 2024 edition, and dash,
# busybox and bash have them; a shell without them takes the longer way.
landfall_current() {
  c=
  # shellcheck disable=SC3013
  if [ -L "$1/current" ]; then
    c=$(cd -P "$1/current" 2>/dev/null && pwd -P) && c=${c##*/} &&
      [ "$1/current" -ef "$1/releases/$c" ] 2>/dev/null ||
      c=$(readlink "$1/current" 2>/dev/null) || c=
  fi
  c=${c##*/}
}

# landfall_releases DIR: the directories of DIR named by hex digits (the
# releases; an upload in progress ends in `.partial`, and a link is none),
# newest first, one a line, in the
# order of `ls -1t`: by time of change, then by name. The shell orders them
# itself with `test -nt`; two of the same time as it sees them (busybox
# sees only seconds) are left to ls.
landfall_releases() {
  sorted=
  for d in "$1"/*; do
    r=${d##*/}
    case $r in '' | *[!0-9a-f]*) continue ;; esac
    # A link is no release, whatever it leads to (see landfall_complete).
    [ ! -L "$d" ] && [ -d "$d" ] || continue
    placed='' ahead=''
    for s in $sorted; do
      # shellcheck disable=SC3013 # See landfall_current.
      if [ -z "$placed" ] && [ "$d" -nt "$1/$s" ] 2>/dev/null; then
        ahead="$ahead $r"
        placed=1
      elif [ -z "$placed" ] && ! [ "$1/$s" -nt "$d" ] 2>/dev/null; then
        # shellcheck disable=SC2012 # Only ls sorts by mtime; ids are hex.
        ls -1t "$1" | while IFS= read -r n; do
          case $n in *[!0-9a-f]*) ;; *) [ -L "$1/$n" ] || [ ! -d "$1/$n" ] || printf '%s\n' "$n" ;; esac
        done
        return 0
      fi
      ahead="$ahead $s"
    done
    [ -n "$placed" ] || ahead="$ahead $r"
    sorted=$ahead
  done
  for r in $sorted; do
    printf '%s\n' "$r"
  done
}
