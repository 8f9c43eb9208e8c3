# The deploy lock of a path, who owns the path, the record of the
# steps that run under the lock, the registry of locked paths, and the
# log of what changed.

# landfall_lock lf_path lf_owner lf_break_lock lf_name: landfall_take_lock.
landfall_lock() {
  landfall_take_lock "$lf_path" "$lf_owner" "$lf_break_lock" "$lf_name"
}

# landfall_take_lock PATH OWNER BREAK NAME: takes the deploy lock of PATH,
# or reports who holds it and exits 3, or exits 4 if PATH is not NAME's.
landfall_take_lock() {
  landfall_try_lock "$@" && return 0
  [ -f "$1/.landfall/lock" ] || exit 4
  printf 'locked\t%s\n' "$(head -n 1 "$1/.landfall/lock" 2>/dev/null)"
  exit 3
}

# landfall_try_lock PATH OWNER BREAK NAME: takes the deploy lock of PATH,
# or fails if another deploy holds it, or if PATH is not artifact NAME's
# (see landfall_owns; the reason is on stderr, and no lock is left).
# BREAK=1 removes a lock left behind first.
landfall_try_lock() {
  if [ -L "$1/.landfall" ]; then
    printf '%s/.landfall is a link, which landfall did not make\n' "$1" >&2
    return 1
  fi
  if [ -e "$1" ]; then
    landfall_trusted "$1" || return 1
  fi
  mkdir -p "$1/.landfall" || landfall_fail "cannot create $1/.landfall"
  landfall_trusted "$1/.landfall" || return 1
  chmod 700 "$1/.landfall" || landfall_fail "cannot make $1/.landfall private"
  if [ "$3" = 1 ]; then
    landfall_wait_steps "$1" || return 1
    rm -f "$1/.landfall/lock"
  fi
  # The lock is written whole under a name of its own, then linked into
  # place: `ln` fails if a lock is there, so only one deploy takes it, and
  # whoever reads it finds its owner line.
  t="$1/.landfall/lock.$$"
  printf '%s\n' "$2" >"$t" || landfall_fail "cannot write $t"
  if ! ln "$t" "$1/.landfall/lock" 2>/dev/null; then
    rm -f "$t"
    return 1
  fi
  rm -f "$t"
  if landfall_owns "$1" "$4"; then
    landfall_register "$1"
    return 0
  fi
  rm -f "$1/.landfall/lock"
  return 1
}

# landfall_wait lf_path lf_token lf_owner: keeps the lock of lf_path,
# held by this run (lf_token), while its rollout waits for promotion: the
# lock is rewritten to lf_owner (its owner line, which says what waits and
# holds the token still), whole under a name of its own, then renamed over
# the lock, so that whoever reads it finds one owner line or the other.
# Fails if this run does not hold the lock.
landfall_wait() {
  l="$lf_path/.landfall/lock"
  if [ -L "$l" ] || [ ! -f "$l" ] || ! grep -qF "$lf_token" "$l"; then
    landfall_fail "the lock of $lf_path is not this deploy's any more"
  fi
  printf '%s\n' "$lf_owner" >"$l.$$" && mv -f "$l.$$" "$l" || {
    rm -f "$l.$$"
    landfall_fail "cannot write $l"
  }
}

# landfall_take_over lf_path lf_owner lf_token lf_name: takes over the
# lock a rollout that waits for promotion keeps (landfall_adopt), or
# reports who holds the lock and exits 3; fails if there is no lock.
landfall_take_over() {
  landfall_adopt "$lf_path" "$lf_owner" "$lf_token" "$lf_name" && return 0
  [ -f "$lf_path/.landfall/lock" ] || landfall_fail "no rollout waits on $lf_path any more"
  printf 'locked\t%s\n' "$(head -n 1 "$lf_path/.landfall/lock" 2>/dev/null)"
  exit 3
}

# landfall_adopt PATH OWNER TOKEN NAME: takes over, for OWNER, the lock of
# PATH that the run holding TOKEN kept while its rollout waits for
# promotion (see landfall_wait): written whole under a name of its own and
# renamed over it. Fails, changing nothing, if that run does not hold it,
# or if PATH is not artifact NAME's (see landfall_owns).
landfall_adopt() {
  l="$1/.landfall/lock"
  [ -n "$3" ] && [ ! -L "$1/.landfall" ] && [ ! -L "$l" ] && [ -f "$l" ] || return 1
  grep -qF "$3" "$l" && landfall_trusted "$1/.landfall" && landfall_owns "$1" "$4" || return 1
  printf '%s\n' "$2" >"$l.$$" && mv -f "$l.$$" "$l" || {
    rm -f "$l.$$"
    return 1
  }
  landfall_register "$1"
}

# landfall_missing PATH: prints the outermost directory of PATH that does
# not exist yet (PATH itself, or one of its parents), or nothing.
landfall_missing() {
  d=$1 top=
  while [ -n "$d" ] && [ "$d" != / ] && [ ! -e "$d" ] && [ ! -L "$d" ]; do
    top=$d
    d=${d%/*}
  done
  printf '%s' "$top"
}

# landfall_trusted DIR: whether DIR (followed, if it is a link) belongs to
# the user landfall runs as, and nobody else may write to it: what landfall
# keeps there must not be changed behind its back. Says why not on stderr.
landfall_trusted() {
  # shellcheck disable=SC2046 # ls's words are the fields wanted.
  set -- "$1" $(ls -ldLn "$1" 2>/dev/null)
  if [ $# -lt 4 ]; then
    printf 'cannot read %s\n' "$1" >&2
    return 1
  fi
  if [ "$4" != "$(id -u)" ]; then
    printf '%s belongs to user id %s, not to the user deploying (%s): refusing to keep releases there\n' \
      "$1" "$4" "$(id -u)" >&2
    return 1
  fi
  case $2 in
  ????????w*)
    printf '%s can be written by any user (%s): refusing to keep releases there\n' "$1" "$2" >&2
    return 1
    ;;
  esac
}

# landfall_owns PATH NAME: whether PATH holds the releases of NAME
# (PROJECT/ARTIFACT@ENVIRONMENT), as recorded when it was first deployed:
# no other artifact, nor the same artifact of another environment, deploys
# into it, switches its `current` or writes to its log. A record made
# before records named the environment (PROJECT/ARTIFACT) is taken to be
# this environment's, and says so from then on. Fails, saying why on
# stderr, if it is another's or if the record cannot be written.
landfall_owns() {
  f="$1/.landfall/artifact"
  ! landfall_foreign "$1" "$2" || return 1
  if [ -e "$f" ] && [ ! -f "$f" ]; then
    printf 'cannot write %s\n' "$f" >&2
    return 1
  fi
  [ "$(head -n 1 "$f" 2>/dev/null)" != "$2" ] || return 0
  printf '%s\n' "$2" >"$f.new" 2>/dev/null && mv -fT "$f.new" "$f" && return 0
  rm -f "$f.new"
  printf 'cannot write %s\n' "$f" >&2
  return 1
}

# landfall_foreign PATH NAME: whether the record of PATH names another
# owner than NAME (PROJECT/ARTIFACT@ENV, PROJECT being NAME:ID for a
# project with an id; see landfall_owns), saying whose on stderr; reads
# only. A record made before records named the project's id (or the
# environment) is taken to be this project's when it names this
# project's name.
landfall_foreign() {
  f="$1/.landfall/artifact"
  if [ -L "$f" ]; then
    printf '%s is a link, which landfall did not make\n' "$f" >&2
    return 0
  fi
  [ -f "$f" ] || return 1
  o=$(head -n 1 "$f")
  [ -n "$o" ] && [ "$o" != "$2" ] || return 1
  op=${o%%/*} oa=${o#*/} np=${2%%/*} na=${2#*/}
  case $op in
  "$np") ;;
  *:*)
    if [ "${op%%:*}" = "${np%%:*}" ]; then
      printf '%s holds the releases of another project named %s (id %s), not of this one (%s): give each project a path of its own\n' \
        "$1" "${op%%:*}" "${op#*:}" "$(landfall_id_of "$np")" >&2
    else
      printf '%s holds the releases of %s, not of %s (if it is to change hands, remove %s)\n' "$1" "$o" "$2" "$f" >&2
    fi
    return 0
    ;;
  "${np%%:*}") ;;
  *)
    printf '%s holds the releases of %s, not of %s (if it is to change hands, remove %s)\n' "$1" "$o" "$2" "$f" >&2
    return 0
    ;;
  esac
  [ "$oa" != "$na" ] && [ "$oa" != "${na%@*}" ] || return 1
  if [ "${oa%@*}" = "${na%@*}" ]; then
    printf '%s holds the releases of %s for environment %s, not %s: one environment never deploys over another'"'"'s (give each its own path; if this one is to change environments, remove %s)\n' \
      "$1" "${np%%:*}/${oa%@*}" "${oa##*@}" "${na##*@}" "$f" >&2
  else
    printf '%s holds the releases of %s, not of %s (if it is to change hands, remove %s)\n' "$1" "$o" "$2" "$f" >&2
  fi
}

# landfall_id_of PROJECT: the id of a project as records name it
# (NAME:ID), or `none`.
landfall_id_of() {
  case $1 in *:*) printf 'id %s' "${1#*:}" ;; *) printf 'no id' ;; esac
}

# landfall_registry: the file that lists every path landfall has locked
# on this host for the user it runs as, one a line, so that an artifact
# that left the model (or moved) is known later as an orphan.
landfall_registry() {
  printf '%s/paths' "${LANDFALL_STATE:-${XDG_STATE_HOME:-${HOME:-/nonexistent}/.local/state}/landfall}"
}

# landfall_register PATH: adds PATH to the registry, if it is not there.
# A registry that cannot be written only means orphans will not be known.
landfall_register() {
  r=$(landfall_registry)
  grep -qxF -- "$1" "$r" 2>/dev/null && return 0
  (mkdir -p "${r%/*}" && printf '%s\n' "$1" >>"$r") 2>/dev/null || :
}

# landfall_unregister PATH: drops PATH from the registry.
landfall_unregister() {
  r=$(landfall_registry)
  [ -f "$r" ] || return 0
  grep -vxF -- "$1" "$r" >"$r.$$" 2>/dev/null
  mv -f "$r.$$" "$r" 2>/dev/null || rm -f "$r.$$"
}

# landfall_forget lf_path lf_dir lf_token: undoes a claim of lf_path that
# made lf_dir (see landfall_claim) by a run that goes no further: removes
# lf_dir, if this run (lf_token) holds the lock of lf_path.
landfall_forget() {
  if [ -f "$lf_path/.landfall/lock" ] && grep -qF "$lf_token" "$lf_path/.landfall/lock"; then
    case $lf_path in "$lf_dir" | "$lf_dir"/*) rm -rf "$lf_dir" ;; esac
  fi
  printf 'unlocked\t\n'
}

# landfall_unlock lf_path lf_token: landfall_release_lock, reported.
landfall_unlock() {
  landfall_release_lock "$lf_path" "$lf_token" || return 1
  printf 'unlocked\t\n'
}

# landfall_release_lock PATH TOKEN: removes the lock of PATH if the run
# whose token is TOKEN holds it.
landfall_release_lock() {
  if [ -n "$2" ] && [ -f "$1/.landfall/lock" ] && grep -qF "$2" "$1/.landfall/lock"; then
    rm -f "$1/.landfall/lock" || return 1
  fi
}

# landfall_steps PATH: notes that this script runs steps under the lock of
# PATH (its process group, in .landfall/steps, until it exits), so that a
# deploy taking over the lock of an interrupted one can wait for steps that
# still run: one that ran landfall over ssh can be killed while its steps
# go on on the host.
landfall_steps() {
  landfall_pgid
  [ -n "$g" ] || return 0
  # Written anew, never through a link that stands there.
  rm -f "$1/.landfall/steps"
  printf '%s\n' "$g" >"$1/.landfall/steps" || return 0
  steps_file="$1/.landfall/steps"
  trap 'rm -f "$steps_file"' EXIT
}

# landfall_pgid: sets g to the process group of this shell, read from
# /proc where there is one (the fields after the command's name, which
# ends with the last `)`), or else from ps.
landfall_pgid() {
  g=
  if [ -r "/proc/$$/stat" ] && IFS= read -r g <"/proc/$$/stat"; then
    # shellcheck disable=SC2086 # The fields are split on purpose.
    set -- ${g##*) }
    g=${3:-}
  else
    g=$(ps -o pgid= -p $$ 2>/dev/null | tr -d ' ')
  fi
}

# landfall_wait_steps PATH [SECONDS]: waits (at most SECONDS, 30 unless
# given) until the steps of another deploy noted in .landfall/steps have
# ended; steps still running then are stopped (TERM, then KILL 5 seconds
# later), and seen to be gone. Fails, saying so on stderr, if they are
# not: a lock is never taken over while the steps of the deploy that held
# it run.
landfall_wait_steps() {
  g=$(cat "$1/.landfall/steps" 2>/dev/null) || return 0
  case $g in '' | *[!0-9]*) return 0 ;; esac
  term=$((${2:-30} * 5))
  n=0
  while kill -0 "-$g" 2>/dev/null; do
    if [ "$n" = "$term" ]; then
      kill -TERM "-$g" 2>/dev/null
    elif [ "$n" = $((term + 25)) ]; then
      kill -KILL "-$g" 2>/dev/null
    elif [ "$n" = $((term + 50)) ]; then
      printf 'the steps of the deploy that held the lock (process group %s) still run\n' "$g" >&2
      return 1
    fi
    sleep 0.2
    n=$((n + 1))
  done
  rm -f "$1/.landfall/steps"
}

# landfall_log PATH LINE: appends LINE to the log, or reports `unlogged`
# (the disk is full, or the log is a link landfall did not make, which it
# does not write through). Then `.landfall/confirmed` is written with the
# release the log now confirms (see landfall_confirmed), so that a probe
# need not read the log.
landfall_log() {
  if [ -L "$1/.landfall/log" ] || ! printf '%s\n' "$2" >>"$1/.landfall/log"; then
    printf 'unlogged\t%s\n' "$1/.landfall/log"
    return 0
  fi
  case $2 in
  *'"event":"exec'*) k=$(landfall_confirmed "$1") ;;
  *'"release":"'*)
    k=${2##*'"release":"'}
    k=${k%%'"'*}
    ;;
  *) k= ;;
  esac
  landfall_hex "$k" || k=
  [ -L "$1/.landfall/confirmed" ] || printf '%s\n' "$k" >"$1/.landfall/confirmed" 2>/dev/null || :
}

# landfall_confirmed PATH: the release PATH's log last confirmed running:
# an activation is logged once its health passed, a switch back once it
# is done. Commands run on the host are logged too: they confirm nothing.
# One sed: it holds the last line that is not a command's, and at the end
# prints that line's release.
# shellcheck disable=SC2016 # `$` is sed's last line.
landfall_confirmed() {
  sed -n '/"event":"exec/!h
    ${x;s/.*"release":"\([0-9a-f]*\)".*/\1/p;}' "$1/.landfall/log"
}
