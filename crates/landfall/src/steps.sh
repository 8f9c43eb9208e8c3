# landfall's steps on a host: POSIX sh and coreutils only, no agent.
#
# This file holds functions only. landfall renders each step it wants run
# as a call with every argument shell-quoted, puts the functions the calls
# need before them, wraps the whole in one `{ ...; }` group (so that a
# script cut short is a syntax error and runs nothing), and feeds it to
# `sh -s`, on the local machine or over ssh. Because the script arrives
# on standard input, nothing here may read standard input except from a
# here-document: hooks get /dev/null.
#
# A release carries its own activation: `.landfall-activation` in the
# release directory, written by landfall with every value quoted, sets
# the hooks and their time limits (landfall_recorded reads it). Activating a release, switching back to
# one and building one run what that release recorded, never what the
# deploying workspace says today.
#
# A release that runs a service also carries the service's definition in
# .landfall-service/ (see landfall_service_start): activating the release
# installs it and restarts the service; going back installs the older
# release's own. Under `--local` (LANDFALL_LOCAL=1) no service manager is
# used: the service runs as a plain background process (landfall_process_*).
#
# Results are reported as tab-separated lines on stdout; hook output goes
# to stderr. Exit statuses: 0 done, 3 locked by another deploy, 4 the
# path is not the artifact's to lock (see landfall_owns), 10 pre_activate
# or the check of the service manager failed (current untouched), 11
# activation failed after the switch, 12 the build hook failed (the upload
# is removed), 13 the artifact runs no service, 70 an unexpected error.

# `A && B || landfall_fail ...` means "fail if any of them fails", which
# is what it does: SC2015 ("A && B || C is not if-then-else") does not
# apply.
# shellcheck disable=SC2015
set -u
umask 022
# The steps finish on the host whatever becomes of the connection that
# brought them: a hangup, or output nobody reads any more, does not stop
# them (hooks get the default dispositions back, see landfall_limited).
trap '' HUP PIPE

landfall_fail() {
  printf 'landfall: %s\n' "$*" >&2
  exit 70
}

# landfall_probe DETAIL PATH...: for each path (numbered from 0), the
# current release, the complete releases (newest first), the lock, if one
# is held, and the release the log last confirmed; with DETAIL=1 also each
# release's provenance and the tail of the log.
landfall_probe() {
  detail=$1
  shift
  i=0
  for p in "$@"; do
    landfall_current "$p"
    printf 'current\t%s\t%s\n' "$i" "$c"
    if [ -d "$p/releases" ]; then
      for r in $(landfall_releases "$p/releases"); do
        printf 'release\t%s\t%s\n' "$i" "$r"
        if [ "$detail" = 1 ] && [ -f "$p/releases/$r/.landfall-release" ]; then
          printf 'provenance\t%s\t%s\t%s\n' "$i" "$r" "$(head -n 1 "$p/releases/$r/.landfall-release")"
        fi
      done
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
    if [ "$detail" = 1 ]; then
      landfall_service_state "$i" "$p"
    fi
    if [ "$detail" = 1 ] && [ -f "$p/.landfall/log" ]; then
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

# landfall_orphans PROJECT ENV KNOWN...: reports each path of the registry
# that provably holds releases of PROJECT (NAME:ID) for environment ENV and
# has nothing to do with KNOWN (the paths the model deploys to on this
# host): `orphan`, the path, its artifact, its current release, and its
# service (`MANAGER NAME`). A path is compared by what it is on disk: one
# that is, holds or lies in a path of KNOWN (each resolved, links
# followed), that is not written in its own canonical form (a link, `.`,
# `..` or an empty component in it), or whose record names another project
# (or this one's name without its id) is none of this run's to remove.
landfall_orphans() {
  project=$1 env=$2
  shift 2
  r=$(landfall_registry)
  [ -f "$r" ] || return 0
  known=
  for k in "$@"; do
    known="$known$(landfall_canonical "$k" || printf '%s' "$k")
"
  done
  sort -u "$r" | while IFS= read -r p; do
    [ -n "$p" ] && [ -d "$p" ] || continue
    canon=$(landfall_canonical "$p") && [ "$canon" = "$p" ] || continue
    printf '%s' "$known" | while IFS= read -r k; do
      case $canon/ in "$k"/*) exit 1 ;; esac
      case $k/ in "$canon"/*) exit 1 ;; esac
    done || continue
    f="$p/.landfall/artifact"
    [ -f "$f" ] && [ ! -L "$f" ] && [ ! -L "$p/.landfall" ] || continue
    o=$(head -n 1 "$f")
    case $o in "$project"/*@"$env") ;; *) continue ;; esac
    a=${o#"$project"/}
    landfall_current "$p"
    printf 'orphan\t%s\t%s\t%s\t%s\n' "$p" "${a%@*}" "${c##*/}" "$(landfall_service_of "$p/current")"
  done
}

# landfall_canonical PATH: prints PATH as it is on disk, every link
# followed and every `.`, `..` and empty component resolved (PATH must be
# a directory); fails if it is none.
landfall_canonical() {
  case $1 in /*) ;; *) return 1 ;; esac
  (cd -P -- "$1" 2>/dev/null && pwd -P)
}

# landfall_prune PATH OWNER NAME TOKEN: removes the orphan PATH, which
# must hold NAME's releases: under its lock, stops its service (only if the
# definition installed is still the one PATH installed: another path may
# run a service of that name now), removes the directory and drops it from
# the registry. Exits 3 or 4 as landfall_lock does.
landfall_prune() {
  p=$1
  if [ ! -e "$p" ] && [ ! -L "$p" ]; then
    landfall_unregister "$p"
    printf 'pruned\t%s\n' "$p"
    return 0
  fi
  # Only a path written as it is on disk is removed: through a link, the
  # directory removed would be another than the one whose record was read.
  if [ "$(landfall_canonical "$p")" != "$p" ]; then
    landfall_fail "$p is not a directory written in its own canonical form (a link, or . or .. in it): not removed"
  fi
  landfall_lock "$p" "$2" 0 "$3"
  landfall_steps "$p"
  if landfall_recorded "$p/current" 2>/dev/null && [ -n "$service_manager" ]; then
    if landfall_installed_here "$p"; then
      landfall_service_remove "$p" "$service_manager" "$service_name" || landfall_fail "cannot stop the service $service_name"
    else
      printf 'kept-service\t%s\n' "$service_name"
    fi
  fi
  rm -rf "$p" || landfall_fail "cannot remove $p"
  landfall_unregister "$p"
  printf 'pruned\t%s\n' "$p"
}

# landfall_installed_here PATH: whether the definition of the service
# PATH's current release recorded is, where its manager reads it, the one
# PATH installed (see landfall_install); under `--local`, whether its
# process runs from PATH.
landfall_installed_here() {
  if [ -n "${LANDFALL_LOCAL:-}" ]; then
    landfall_process_pid "$1" >/dev/null
    return
  fi
  [ -n "$service_manager" ] && [ -f "$1/.landfall/service.unit" ] &&
    cmp -s "$(landfall_definition_path unit)" "$1/.landfall/service.unit"
}

# landfall_unregister PATH: drops PATH from the registry.
landfall_unregister() {
  r=$(landfall_registry)
  [ -f "$r" ] || return 0
  grep -vxF -- "$1" "$r" >"$r.$$" 2>/dev/null
  mv -f "$r.$$" "$r" 2>/dev/null || rm -f "$r.$$"
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

# landfall_lock PATH OWNER BREAK NAME: takes the deploy lock of PATH, or
# reports who holds it and exits 3, or exits 4 if PATH is not NAME's.
landfall_lock() {
  landfall_try_lock "$@" && return 0
  [ -f "$1/.landfall/lock" ] || exit 4
  printf 'locked\t%s\n' "$(head -n 1 "$1/.landfall/lock" 2>/dev/null)"
  exit 3
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

# landfall_claim INDEX PATH RELEASE OWNER BREAK GIT NAME FROM TOP GONE SHARED...:
# unless RELEASE is current and unlocked (an empty RELEASE never is), takes
# the deploy lock of PATH (for artifact NAME) and prepares the directories
# a release needs (the bare repository too with GIT=1). Reports, for the
# path numbered INDEX, `held` with the current release as read under the
# lock (and `created` with the outermost directory it made, for a path
# that did not exist: what to remove if the run goes no further), `busy`
# with the holder of the lock, or `unclaimed` with the reason the path
# could not be locked or its directories made (no lock, and nothing it
# made, is then left). With the lock held, FROM current and RELEASE not
# on the host, the upload of RELEASE is made a copy of FROM, which has TOP
# entries at its top, without the paths GONE (landfall_derive). It never
# exits: the other paths of the host go on.
landfall_claim() {
  i=$1 p=$2 id=$3 owner=$4 brk=$5 git=$6 name=$7 from=$8 top=$9
  shift 9
  gone=$1
  shift
  landfall_current "$p"
  if [ -n "$id" ] && [ "${c##*/}" = "$id" ] && [ ! -f "$p/.landfall/lock" ]; then
    # Nothing to do here, unless the path is another's.
    if err=$(landfall_foreign "$p" "$name" 2>&1); then
      printf 'unclaimed\t%s\t%s\n' "$i" "$(printf '%s' "$err" | tr '\n' ' ')"
    else
      landfall_register "$p"
    fi
    return 0
  fi
  new=$(landfall_missing "$p")
  if ! err=$( (landfall_try_lock "$p" "$owner" "$brk" "$name") 2>&1); then
    if [ -f "$p/.landfall/lock" ]; then
      printf 'busy\t%s\t%s\n' "$i" "$(head -n 1 "$p/.landfall/lock" 2>/dev/null)"
    else
      [ -z "$new" ] || rm -rf "$new"
      printf 'unclaimed\t%s\t%s\n' "$i" "$(printf '%s' "$err" | tr '\n' ' ')"
    fi
    return 0
  fi
  if ! err=$( (landfall_prepare "$p" "$@" >/dev/null && if [ "$git" = 1 ]; then landfall_git_init "$p"; fi) 2>&1); then
    rm -f "$p/.landfall/lock"
    [ -z "$new" ] || rm -rf "$new"
    printf 'unclaimed\t%s\t%s\n' "$i" "$(printf '%s' "$err" | tr '\n' ' ')"
    return 0
  fi
  landfall_current "$p"
  printf 'held\t%s\t%s\n' "$i" "${c##*/}"
  [ -z "$new" ] || printf 'created\t%s\t%s\n' "$i" "$new"
  if [ -n "$from" ] && [ -n "$id" ] && [ "${c##*/}" = "$from" ] && [ ! -d "$p/releases/$id" ]; then
    landfall_derive "$i" "$p" "$id" "$from" "$top" "$gone"
  fi
}

# landfall_forget PATH DIR TOKEN: undoes a claim of PATH that made DIR (see
# landfall_claim) by a run that goes no further: removes DIR, if this run
# (TOKEN) holds the lock of PATH.
landfall_forget() {
  if [ -f "$1/.landfall/lock" ] && grep -qF "$3" "$1/.landfall/lock"; then
    case $1 in "$2" | "$2"/*) rm -rf "$2" ;; esac
  fi
  printf 'unlocked\t\n'
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

# landfall_unlock PATH TOKEN: removes the lock if this run holds it.
landfall_unlock() {
  if [ -f "$1/.landfall/lock" ] && grep -qF "$2" "$1/.landfall/lock"; then
    rm -f "$1/.landfall/lock" || return 1
  fi
  printf 'unlocked\t\n'
}

# landfall_prepare PATH SHARED...: the directories a release needs;
# reports the current release as `prepared`.
landfall_prepare() {
  p=$1
  shift
  mkdir -p "$p/releases" "$p/shared" || landfall_fail "cannot create $p/releases"
  # An upload goes into a directory landfall makes, never through a link.
  for f in "$p"/releases/*.partial; do
    if [ -L "$f" ]; then
      rm -f "$f" || landfall_fail "cannot remove the link $f"
    fi
  done
  for d in "$@"; do
    mkdir -p "$p/shared/$d" || landfall_fail "cannot create $p/shared/$d"
  done
  landfall_current "$p"
  printf 'prepared\t%s\n' "${c##*/}"
}

# landfall_git_init PATH: the bare repository that git artifacts are
# pushed to, created on first use.
landfall_git_init() {
  r="$1/.landfall/repo.git"
  [ -d "$r" ] && return 0
  command -v git >/dev/null || landfall_fail "git is not installed on this host"
  git init --quiet --bare "$r.new" && mv "$r.new" "$r" || landfall_fail "cannot create $r"
}

# landfall_checkout PATH RELEASE TREE: checks a tree of the pushed commit
# out into the release's upload directory, with a private index.
landfall_checkout() {
  part="$1/releases/$2.partial"
  rm -rf "$part" && mkdir -p "$part" || landfall_fail "cannot create $part"
  (
    GIT_DIR="$1/.landfall/repo.git" GIT_WORK_TREE="$part" GIT_INDEX_FILE="$1/.landfall/index.$2"
    export GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE
    git read-tree "$3" && git checkout-index --all --force
    status=$?
    rm -f "$GIT_INDEX_FILE"
    exit $status
  ) || landfall_fail "cannot check out tree $3 into $part"
}

# landfall_put DIR NAME MODE: writes a file of a release from base64 on
# standard input (a here-document), replacing whatever is at NAME.
landfall_put() {
  f="$1/$2"
  mkdir -p "${f%/*}" && rm -rf "$f" && (umask 077 && base64 -d >"$f") && chmod "$3" "$f" ||
    landfall_fail "cannot write $f"
}

# landfall_pull PATH RELEASE CURRENT SECONDS: makes the upload of RELEASE
# from an object store, as the list on standard input (a here-document)
# says, one line per entry of the artifact:
#   file<TAB>MODE<TAB>SIZE<TAB>BLAKE3<TAB>SHA256<TAB>MTIME<TAB>URL<TAB>NAME
#   symlink<TAB>TARGET<TAB>NAME
# A file that CURRENT's manifest lists with the same mode, size and blake3
# is hard-linked from it, as rsync's --link-dest does, if nothing on its
# path changed since CURRENT was made (as landfall_derive asks: nothing
# newer than its .landfall-release, written last), and one whose
# content this upload has already is linked from there; any other is
# fetched from URL (a presigned GET, which holds no `"` or `\`) with curl,
# at most SECONDS each, into a temporary file, checked against its sha256,
# and only then given its mode and mtime (MTIME: UTC, as `touch -t` reads
# it) and its name. Any failure removes the upload. Reports
# `pulled FILES BYTES`: what was fetched.
landfall_pull() {
  p=$1 id=$2 cur=$3 limit=$4
  part="$p/releases/$id.partial"
  command -v curl >/dev/null || landfall_fail "curl is not installed on this host: a deploy from a store needs it"
  command -v sha256sum >/dev/null || landfall_fail "sha256sum (coreutils) is not installed on this host"
  rm -rf "$part" && mkdir -p "$part" || landfall_fail "cannot create $part"
  have='' changed="$part/.landfall-changed" was="$p/releases/$cur"
  if [ -n "$cur" ] && [ -f "$was/.landfall-manifest" ] && [ ! -L "$was" ] &&
    [ -f "$was/.landfall-release" ] && [ ! -L "$was/.landfall-release" ] &&
    find "$was" -mindepth 1 -newer "$was/.landfall-release" >"$changed" 2>/dev/null; then
    have="$was/.landfall-manifest"
  fi
  # Each line gets what to do first: `old NAME` (a file of CURRENT that
  # nothing on its path changed since it was made), `dup NAME` (a file of
  # this upload), `get -`, or `link -`.
  plan=$(awk -v have="$have" -v changed="$changed" -v prefix="$was/" 'BEGIN {
      FS = "\t"
      if (have != "") {
        while ((getline line < changed) > 0) touched[substr(line, length(prefix) + 1)] = 1
        while ((getline line < have) > 0) {
          n = split(line, f, "\t")
          if (f[1] != "file" || n < 5) continue
          # A file, or a directory above it, that changed is not reused.
          k = split(f[5], part, "/")
          path = ""
          same = 1
          for (i = 1; i <= k; i++) {
            path = path (i > 1 ? "/" : "") part[i]
            if (path in touched) same = 0
          }
          if (same) old[f[2] "\t" f[3] "\t" f[4]] = f[5]
        }
      }
    }
    $1 == "file" {
      key = $2 "\t" $3 "\t" $4
      if (key in old) print "old\t" old[key] "\t" $0
      else if (key in got) print "dup\t" got[key] "\t" $0
      else print "get\t-\t" $0
      if (!(key in got)) got[key] = $8
      next
    }
    $1 == "symlink" { print "link\t-\t" $0 }') || {
    rm -rf "$part"
    landfall_fail "cannot read the list of objects for $id"
  }
  rm -f "$changed"
  tab=$(printf '\t')
  files=0 bytes=0
  # shellcheck disable=SC2034 # The kind and the blake3 were for awk.
  while IFS=$tab read -r what from kind mode size blake sha mtime url name; do
    case $what in
      link)
        # A symlink's line is `symlink TARGET NAME`: its target is read
        # into `mode` and its name into `size`.
        f="$part/$size"
        mkdir -p "${f%/*}" && ln -s "$mode" "$f" || {
          rm -rf "$part"
          landfall_fail "cannot link $f"
        }
        continue
        ;;
      old) src="$p/releases/$cur/$from" ;;
      dup) src="$part/$from" ;;
      get) src= ;;
      *) continue ;;
    esac
    f="$part/$name"
    mkdir -p "${f%/*}" || {
      rm -rf "$part"
      landfall_fail "cannot create the directory of $f"
    }
    if [ -n "$src" ] && [ -f "$src" ] && [ ! -L "$src" ] && ln "$src" "$f" 2>/dev/null; then
      continue
    fi
    tmp="$part/.landfall-pull"
    # The URL reaches curl on its standard input, not its command line,
    # where any user of the host could read it.
    if ! printf 'url = "%s"\n' "$url" |
      curl -fsS --retry 3 --connect-timeout 10 --max-time "$limit" -K - -o "$tmp"; then
      rm -rf "$part"
      landfall_fail "cannot fetch $name (sha256 $sha) from the store"
    fi
    sum=$(sha256sum "$tmp") && sum=${sum%% *} || sum=
    if [ "$sum" != "$sha" ]; then
      rm -rf "$part"
      landfall_fail "sha256 mismatch: $name fetched from the store has sha256 $sum, not $sha; the release is not made"
    fi
    chmod "$mode" "$tmp" && TZ=UTC0 touch -m -t "$mtime" "$tmp" && mv -f "$tmp" "$f" || {
      rm -rf "$part"
      landfall_fail "cannot write $f"
    }
    files=$((files + 1))
    bytes=$((bytes + size))
  done <<EOF
$plan
EOF
  printf 'pulled\t%s\t%s\n' "$files" "$bytes"
}

# landfall_derive I PATH RELEASE FROM TOP GONE: makes the upload of RELEASE
# a copy of the release FROM, every file a hard link (`cp -al`), without
# the paths of GONE (one a line, as FROM's manifest names them), for a
# push that then sends only what differs. FROM must be a complete release that
# nothing changed since it was made: TOP entries at its top, as its manifest
# says (with .landfall-manifest and .landfall-release), and nothing below
# newer than its .landfall-release, written last (a file's mtime comes from
# its content, and is before 2010; an edit, or a file added or removed,
# makes something newer; the release's own directory is touched when it is
# activated, and is not compared). Reports
# `derived I`, or `underived I` and why: then there is no upload, and the
# push sends everything. A file of the copy is never written in place: what
# changed is replaced, so FROM stays as it is.
landfall_derive() {
  old="$2/releases/$4" part="$2/releases/$3.partial"
  rm -rf "$part" || landfall_fail "cannot remove $part"
  if [ -L "$old" ] || [ ! -d "$old" ] || [ ! -f "$old/.landfall-release" ] || [ -L "$old/.landfall-release" ]; then
    printf 'underived\t%s\t%s is no complete release\n' "$1" "$4"
    return 0
  fi
  n=0
  for f in "$old"/* "$old"/.[!.]* "$old"/..?*; do
    if [ -e "$f" ] || [ -L "$f" ]; then n=$((n + 1)); fi
  done
  if [ "$n" != "$5" ]; then
    printf 'underived\t%s\t%s has %s entries at its top, not %s\n' "$1" "$4" "$n" "$5"
    return 0
  fi
  if ! newer=$(find "$old" -mindepth 1 -newer "$old/.landfall-release" 2>/dev/null); then
    printf 'underived\t%s\t%s cannot be read\n' "$1" "$4"
    return 0
  fi
  if [ -n "$newer" ]; then
    newer=$(printf '%s\n' "$newer" | head -n 1)
    printf 'underived\t%s\t%s changed after the release was made\n' "$1" "${newer#"$2/releases/"}"
    return 0
  fi
  if ! cp -al "$old" "$part" 2>/dev/null || ! rm -f "$part/.landfall-release" ||
    ! landfall_remove_below "$part" "$6"; then
    rm -rf "$part"
    printf 'underived\t%s\tcannot copy %s as links\n' "$1" "$4"
    return 0
  fi
  printf 'derived\t%s\n' "$1"
}

# landfall_remove_below DIR PATHS: removes each of PATHS (relative to DIR,
# one a line), with what is in it, never through a link: a path with a
# link, or anything but a directory, above it in DIR is left alone, as is
# one with a `.` or `..` component.
landfall_remove_below() {
  printf '%s\n' "$2" | while IFS= read -r f; do
    case /$f/ in // | */../* | */./* | *//*) continue ;; esac
    d=$1 rest=$f
    while :; do
      case $rest in */*) ;; *) break ;; esac
      d="$d/${rest%%/*}" rest=${rest#*/}
      [ ! -L "$d" ] && [ -d "$d" ] || continue 2
    done
    rm -rf "${d:?}/$rest" || return 1
  done
}

# landfall_link DIR NAME TARGET: a symlink of a release, replacing whatever
# is at NAME.
landfall_link() {
  f="$1/$2"
  mkdir -p "${f%/*}" && rm -rf "$f" && ln -s "$3" "$f" || landfall_fail "cannot link $f"
}

# landfall_recorded DIR: reads the activation a release recorded
# (.landfall-activation in DIR, written by landfall with every value
# quoted) into hook_build, hook_pre_activate, hook_activate, hook_health,
# health_timeout and hook_timeout, and for a service service_manager,
# service_name, service_user (the account its configuration named, if
# any), service_ready, ready_timeout, stop_timeout, service_reload and
# service_bin. Fails, with every hook empty, for a release that
# recorded none (one made before releases carried their activation).
landfall_recorded() {
  hook_build='' hook_pre_activate='' hook_activate='' hook_health=''
  hook_once='' health_timeout=1 hook_timeout=1
  service_manager='' service_name='' service_user='' service_ready=''
  ready_timeout=1 stop_timeout=1 service_reload=0 service_bin=''
  [ -f "$1/.landfall-activation" ] && [ ! -L "$1/.landfall-activation" ] || return 1
  # shellcheck source=/dev/null # The release's own, written by landfall.
  . "$1/.landfall-activation" || landfall_fail "cannot read $1/.landfall-activation"
}

# landfall_build PATH RELEASE PREVIOUS: runs the build hook the upload
# recorded, in the upload directory; if it fails, the upload is removed.
landfall_build() {
  landfall_steps "$1"
  part="$1/releases/$2.partial"
  landfall_recorded "$part" || landfall_fail "the upload of $2 has no .landfall-activation"
  export LANDFALL_PATH="$1" LANDFALL_RELEASE="$2" LANDFALL_PREVIOUS="$3"
  [ -n "$hook_build" ] || return 0
  if ! landfall_hook build "$part" "$hook_build" "$hook_timeout"; then
    rm -rf "$part"
    printf 'failed\tbuild\n'
    exit 12
  fi
}

# landfall_finalize PATH RELEASE PROVENANCE: the upload is complete (its
# manifest and activation came with it): records where it comes from in
# .landfall-release (one line of JSON), readable by the deploy account
# alone (it names who deployed, and the values given with --var), and
# gives it its name. A release already complete keeps the provenance it
# was made with.
landfall_finalize() {
  if [ -d "$1/releases/$2" ]; then
    rm -rf "$1/releases/$2.partial"
  else
    # Written again once the release has its name, which may have touched
    # its directory: nothing in the release is then newer than this file
    # (see landfall_derive). What the upload brought by that name goes
    # first, so that nothing is written through a link.
    rm -f "$1/releases/$2.partial/.landfall-release" &&
      (umask 077 && printf '%s\n' "$3" >"$1/releases/$2.partial/.landfall-release") &&
      mv "$1/releases/$2.partial" "$1/releases/$2" &&
      printf '%s\n' "$3" >"$1/releases/$2/.landfall-release" || landfall_fail "cannot rename $1/releases/$2.partial"
  fi
}

# landfall_discard PATH RELEASE: removes what was uploaded of a release
# that will not be activated.
landfall_discard() {
  rm -rf "$1/releases/$2.partial"
}

# landfall_manifest PATH RELEASE: prints the manifest of a release, if it
# has one (releases made before manifests moved into the release directory
# have theirs under .landfall/manifests).
landfall_manifest() {
  if [ -f "$1/releases/$2/.landfall-manifest" ]; then
    cat "$1/releases/$2/.landfall-manifest"
  elif [ -f "$1/.landfall/manifests/$2" ]; then
    cat "$1/.landfall/manifests/$2"
  fi
}

# landfall_files PATH RELEASE MAX FILE...: prints each regular file of a
# release no bigger than MAX bytes as a line `file<TAB>NAME<TAB>SIZE` and
# its bytes, and any other as `skip<TAB>NAME`.
landfall_files() {
  p=$1 id=$2 max=$3
  shift 3
  for f in "$@"; do
    file="$p/releases/$id/$f"
    if [ -f "$file" ] && [ ! -L "$file" ]; then
      size=$(wc -c <"$file" | tr -d ' ')
      if [ "$size" -le "$max" ]; then
        printf 'file\t%s\t%s\n' "$f" "$size"
        cat "$file"
        continue
      fi
    fi
    printf 'skip\t%s\n' "$f"
  done
}

# landfall_complete PATH RELEASE: fails, with the reason, unless RELEASE
# is a complete release of PATH: a directory of its own under releases/
# (not a link, which would take `current` out of the artifact), named as
# a release is, that finalization made whole (its .landfall-release,
# written last, is a file). Nothing may switch to anything else.
landfall_complete() {
  case $2 in '' | *[!0-9a-f]*) landfall_fail "$2 is not a release id" ;; esac
  if [ -L "$1/releases/$2" ]; then
    landfall_fail "$1/releases/$2 is a link, not a release: not switched to"
  fi
  [ -d "$1/releases/$2" ] || landfall_fail "release $2 is not on this host"
  if [ -L "$1/releases/$2/.landfall-release" ] || [ ! -f "$1/releases/$2/.landfall-release" ]; then
    landfall_fail "$1/releases/$2 is not a complete release (it has no .landfall-release): not switched to"
  fi
}

# landfall_switch PATH RELEASE: points `current` at a release atomically:
# a new symlink under a temporary name, renamed over the old one.
landfall_switch() {
  ln -sfn "releases/$2" "$1/.current.new" &&
    mv -fT "$1/.current.new" "$1/current" ||
    landfall_fail "cannot switch $1/current to $2"
}

# landfall_limited DIR COMMAND SECONDS: runs COMMAND in DIR for at most
# SECONDS. Then it is sent TERM, and KILL 5 seconds later, together with
# every process it started that is still in its process group (a service
# it starts as a daemon, in a session of its own, is not).
landfall_limited() {
  command -v timeout >/dev/null || landfall_fail "timeout (coreutils) is not installed on this host"
  (cd "$1" && trap - HUP PIPE && exec timeout -k 5 "$3" sh -c "$2")
}

# landfall_hook NAME DIR COMMAND LIMIT: runs a hook in DIR, its output on
# stderr, for at most LIMIT seconds; reports `timeout` if it was stopped.
landfall_hook() {
  printf 'hook\t%s\n' "$1"
  started=$(date +%s)
  landfall_limited "$2" "$3" "$4" </dev/null >&2
  status=$?
  if { [ "$status" = 124 ] || [ "$status" = 137 ]; } && [ $(($(date +%s) - started)) -ge "$4" ]; then
    printf 'timeout\t%s\t%s\n' "$1" "$4"
  fi
  return "$status"
}

# landfall_health DIR COMMAND TIMEOUT [NAME]: runs COMMAND until it passes
# or TIMEOUT seconds have passed, each try stopped when the time is up;
# shows the output of the last try only. NAME (`health` unless given) is
# what it is reported as. The time is also counted here, in
# tenths of a second, from what each pause and each try stopped at its
# limit took at the least, so that a clock that stands still cannot keep
# the loop going. When the release in DIR runs a service (its activation
# read), each failed try also asks its manager, and the wait ends at once
# if the manager gave up on it (see landfall_service_verdict): no try
# can pass then.
landfall_health() {
  printf 'hook\t%s\n' "${4:-health}"
  deadline=$(($(date +%s) + $3))
  spent=0
  while :; do
    left=$((deadline - $(date +%s)))
    counted=$(($3 - spent / 10))
    [ "$counted" -ge "$left" ] || left=$counted
    [ "$left" -ge 1 ] || left=1
    out=$(landfall_limited "$1" "$2" "$left" </dev/null 2>&1) && return 0
    case $? in 124 | 137) spent=$((spent + left * 10)) ;; esac
    spent=$((spent + 2))
    if [ -n "${service_manager:-}" ] && landfall_service_verdict "$1" && [ "$verdict_state" = gave-up ]; then
      printf '%s\n' "$out" >&2
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ] || [ "$spent" -ge $(($3 * 10)) ]; then
      printf '%s\n' "$out" >&2
      return 1
    fi
    sleep 0.2
  done
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

# landfall_hex WORD: whether WORD is empty or hex digits only, as release
# ids are.
landfall_hex() {
  case $1 in *[!0-9a-f]*) return 1 ;; esac
}

# landfall_activate PATH RELEASE PREVIOUS REVERT LOG_OK LOG_BACK: runs the
# activation RELEASE recorded: the check of its service manager,
# pre_activate, the switch of `current`, the service (its definition
# installed, restarted or reloaded, then `ready` polled), activate, and
# health polled for its timeout. When any of these fail after the switch
# and REVERT=1, it switches back to PREVIOUS at once and runs what PREVIOUS
# recorded (see landfall_back). A release that recorded no activation is
# switched to with no hook run, and reported `unrecorded`.
landfall_activate() {
  p=$1 id=$2 prev=$3 revert=$4 log_ok=$5 log_back=$6
  rel="$p/releases/$id"
  landfall_complete "$p" "$id"
  landfall_steps "$p"
  # The service that runs now, if any: the one current recorded.
  landfall_current "$p"
  old=
  [ -z "$c" ] || old=$(landfall_service_of "$p/releases/${c##*/}")
  landfall_recorded "$rel" || printf 'unrecorded\t%s\n' "$id"
  export LANDFALL_PATH="$p" LANDFALL_RELEASE="$id" LANDFALL_PREVIOUS="$prev"
  if ! landfall_service_check "$rel" >&2; then
    printf 'failed\tservice\n'
    exit 10
  fi
  if [ -n "$hook_pre_activate" ] && ! landfall_hook pre_activate "$rel" "$hook_pre_activate" "$hook_timeout"; then
    printf 'failed\tpre_activate\n'
    exit 10
  fi
  # A release's mtime says when it was last activated; `keep` orders by it.
  touch "$rel"
  landfall_switch "$p" "$id"
  printf 'switched\t%s\n' "$id"
  failed=
  # The release the service ran from, to reload rather than restart it if
  # only its configuration changed (a forced activation of the same
  # release restarts it).
  was=
  [ -z "$c" ] || [ "${c##*/}" = "$id" ] || was="$p/releases/${c##*/}"
  if ! landfall_service_switch "$p" "$rel" "$old" "$was"; then
    failed=service
  elif [ -n "$service_ready" ] && ! landfall_health "$rel" "$service_ready" "$ready_timeout" ready; then
    failed=ready
  elif [ -n "$hook_activate" ] && ! landfall_hook activate "$rel" "$hook_activate" "$hook_timeout"; then
    failed=activate
  elif [ -n "$hook_health" ] && ! landfall_health "$rel" "$hook_health" "$health_timeout"; then
    failed=health
  fi
  if [ -z "$failed" ]; then
    landfall_log "$p" "$log_ok"
    printf 'activated\t%s\n' "$id"
    return 0
  fi
  printf 'failed\t%s\n' "$failed"
  landfall_service_cause "$rel" "$failed"
  if [ "$revert" = 1 ]; then
    landfall_back "$p" "$id" "$prev" "$log_back"
  fi
  exit 11
}

# landfall_once PATH RELEASE: runs the `once` hook RELEASE recorded, in
# the release (complete, not yet current), before any host switches; exits
# 10 if it fails, and nothing is switched.
landfall_once() {
  rel="$1/releases/$2"
  landfall_complete "$1" "$2"
  landfall_steps "$1"
  landfall_recorded "$rel" || landfall_fail "release $2 recorded no activation"
  landfall_current "$1"
  export LANDFALL_PATH="$1" LANDFALL_RELEASE="$2" LANDFALL_PREVIOUS="${c##*/}"
  [ -n "$hook_once" ] || return 0
  if ! landfall_hook once "$rel" "$hook_once" "$hook_timeout"; then
    printf 'failed\tonce\n'
    exit 10
  fi
}

# landfall_check PATH RELEASE: checks again that the activated RELEASE is
# well, between the batches of a rollout: one try of its service's `ready`
# and of its health hook, each for at most its time limit. Exits 11,
# reporting the check that failed, if it is not.
landfall_check() {
  rel="$1/releases/$2"
  landfall_current "$1"
  [ "${c##*/}" = "$2" ] || landfall_fail "current is ${c##*/}, not $2"
  landfall_recorded "$rel" || return 0
  export LANDFALL_PATH="$1" LANDFALL_RELEASE="$2"
  if [ -n "$service_ready" ] && ! landfall_hook ready "$rel" "$service_ready" "$ready_timeout"; then
    printf 'failed\tready\n'
    landfall_service_cause "$rel" ready
    exit 11
  fi
  if [ -n "$hook_health" ] && ! landfall_hook health "$rel" "$hook_health" "$health_timeout"; then
    printf 'failed\thealth\n'
    landfall_service_cause "$rel" health
    exit 11
  fi
}

# landfall_back PATH FROM TO LOG: switches back to TO (or removes `current`
# when there is none) and runs what TO recorded: its service (definition
# installed and restarted; FROM's service removed if TO runs another or
# none), then the activate and health hooks.
landfall_back() {
  p=$1
  landfall_steps "$p"
  old=$(landfall_service_of "$p/releases/$2")
  if [ -z "$3" ]; then
    rm -f "$p/current"
    # shellcheck disable=SC2086 # OLD is two words.
    [ -z "$old" ] || landfall_service_remove "$p" $old
    landfall_log "$p" "$4"
    printf 'reverted\t\n'
    return 0
  fi
  to="$p/releases/$3"
  landfall_complete "$p" "$3"
  landfall_recorded "$to" || printf 'unrecorded\t%s\n' "$3"
  export LANDFALL_PATH="$p" LANDFALL_RELEASE="$3" LANDFALL_PREVIOUS="$2"
  touch "$to"
  landfall_switch "$p" "$3"
  landfall_log "$p" "$4"
  printf 'reverted\t%s\n' "$3"
  if ! landfall_service_switch "$p" "$to" "$old" "$p/releases/$2"; then
    printf 'revert-failed\tservice\n'
    landfall_service_cause "$to" service
    return 1
  fi
  if [ -n "$service_ready" ] && ! landfall_health "$to" "$service_ready" "$ready_timeout" ready; then
    printf 'revert-failed\tready\n'
    landfall_service_cause "$to" ready
    return 1
  fi
  if [ -n "$hook_activate" ] && ! landfall_hook activate "$to" "$hook_activate" "$hook_timeout"; then
    printf 'revert-failed\tactivate\n'
    landfall_service_cause "$to" activate
    return 1
  fi
  if [ -n "$hook_health" ] && ! landfall_health "$to" "$hook_health" "$health_timeout"; then
    printf 'revert-failed\thealth\n'
    landfall_service_cause "$to" health
    return 1
  fi
  return 0
}

# landfall_as_root COMMAND...: runs COMMAND as root: directly when landfall
# runs as root, else through sudo, which must allow it without a password
# (see the guide for the rules a service needs).
landfall_as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  else
    sudo -n "$@"
  fi
}

# landfall_service_of DIR: prints the manager and name of the service the
# release in DIR recorded (`MANAGER NAME`), or nothing.
landfall_service_of() {
  (landfall_recorded "$1" 2>/dev/null && [ -n "$service_manager" ] &&
    printf '%s %s' "$service_manager" "$service_name") 2>/dev/null
}

# landfall_service_check DIR: whether the service the release in DIR
# recorded can be run here, before anything changes: its manager installed
# and allowed (root, or the sudo rules of `init --sudoers`, for system
# units; lingering for a user's own systemd), an account other than root
# unless root was named, and, for a deploy user that is not root, the
# definitions root installed already the release's (only root installs
# them: see landfall_definitions_installed). Says why not on stderr.
landfall_service_check() {
  sdir=$1
  [ -n "$service_manager" ] || return 0
  [ -z "${LANDFALL_LOCAL:-}" ] || return 0
  if [ "$service_manager" = systemd-user ]; then
    u=$(id -un)
    if [ ! -e "/var/lib/systemd/linger/$u" ] &&
      ! loginctl show-user "$u" -p Linger 2>/dev/null | grep -q '=yes'; then
      printf 'user %s has no lingering systemd: a service of systemd-user would stop at logout (as root: loginctl enable-linger %s)\n' "$u" "$u"
      return 1
    fi
  elif [ -z "$service_user" ] && [ "$(id -u)" = 0 ]; then
    printf 'service %s would run as root, the account that deploys: name the account it runs as with user in its service section (user = "root" if root is meant)\n' "$service_name"
    return 1
  fi
  case $service_manager in
  systemd | systemd-user)
    if ! command -v systemctl >/dev/null 2>&1; then
      printf 'systemctl is not installed on this host (the service has manager = "%s")\n' "$service_manager"
      return 1
    fi
    if [ "$service_manager" = systemd ]; then
      out=$(systemctl show --property=Version 2>&1)
    else
      out=$(landfall_systemctl systemd-user show --property=Version 2>&1)
    fi || {
      printf 'systemd does not answer here (the service has manager = "%s"): %s\n' "$service_manager" "$out"
      return 1
    }
    ;;
  supervisor)
    if ! command -v supervisorctl >/dev/null 2>&1; then
      printf 'supervisorctl is not installed on this host (the service has manager = "supervisor")\n'
      return 1
    fi
    if ! landfall_supervisor_dir >/dev/null || ! landfall_supervisor_conf >/dev/null; then
      printf 'supervisord has no configuration here (/etc/supervisor/supervisord.conf and conf.d/, or /etc/supervisord.conf and /etc/supervisord.d/)\n'
      return 1
    fi
    if [ "$(id -u)" = 0 ] && ! out=$(landfall_supervisorctl pid 2>&1); then
      printf 'supervisord does not answer here: %s\n' "$out"
      return 1
    fi
    ;;
  esac
  landfall_service_free "$sdir" || return 1
  [ "$service_manager" != systemd-user ] && [ "$(id -u)" != 0 ] || return 0
  case $service_manager in
  systemd) set -- systemctl restart "$service_name.service" ;;
  *) set -- supervisorctl -c "$(landfall_supervisor_conf)" restart "$service_name" ;;
  esac
  if ! sudo -n -l "$@" >/dev/null 2>&1; then
    printf 'user %s may not run "%s" as root without a password: a system service needs root or the sudo rules that "cargo deploy init --sudoers ENV" prints\n' "$(id -un)" "$*"
    return 1
  fi
  landfall_definitions_installed "$sdir" || return 1
  landfall_environment_readable "$sdir"
}

# landfall_service_free DIR: whether the name of the service the release in
# DIR recorded is free for its artifact. A name is claimed on disk, by the
# definition installed under it, which starts the service from the path
# that installed it: it is free if none is installed, or if that path is
# this artifact's, holds no releases any more, or holds those of this very
# artifact (its record names the same project, artifact and environment:
# the artifact moved, and its old path is an orphan). A definition
# landfall did not write is never replaced. Says why not on stdout.
landfall_service_free() {
  sp=${1%/releases/*}
  sdst=$(landfall_definition_path unit)
  [ -f "$sdst" ] || return 0
  sowner=$(sed -n 's|^ExecStart=\(/.*\)/current/\.landfall-service/run$|\1|p
    s|^command=\(/.*\)/current/\.landfall-service/run$|\1|p' "$sdst" | head -n 1)
  if [ -z "$sowner" ]; then
    printf 'service %s is installed (%s) but not by landfall: landfall does not replace it (give this service another name)\n' "$service_name" "$sdst"
    return 1
  fi
  [ "$sowner" != "$sp" ] && [ -d "$sowner/.landfall" ] || return 0
  if [ -f "$sowner/.landfall/artifact" ] && [ ! -L "$sowner/.landfall/artifact" ] &&
    [ "$(head -n 1 "$sowner/.landfall/artifact")" = "$(head -n 1 "$sp/.landfall/artifact" 2>/dev/null)" ]; then
    return 0
  fi
  printf 'service %s is installed for %s (%s), not for %s (%s): one service name cannot serve two artifacts (give one of them another name, or prune the other)\n' \
    "$service_name" "$sowner" "$(head -n 1 "$sowner/.landfall/artifact" 2>/dev/null || printf 'another user'"'"'s')" \
    "$sp" "$(head -n 1 "$sp/.landfall/artifact" 2>/dev/null)"
  return 1
}

# landfall_definition DIR FILE: prints the definition FILE (unit, socket)
# of the service the release in DIR recorded, as its manager is to read
# it: the release's own, naming the account that deploys if the
# configuration named none (a system service never runs as root unless
# root was named: landfall_service_check refuses that case).
landfall_definition() {
  cat "$1/.landfall-service/$2" || return 1
  [ "$2" = unit ] && [ -z "$service_user" ] || return 0
  case $service_manager in
  systemd) printf 'User=%s\n' "$(id -un)" ;;
  supervisor) printf 'user=%s\n' "$(id -un)" ;;
  esac
}

# landfall_definition_path FILE: where the manager of the recorded service
# reads its definition FILE (unit, socket).
landfall_definition_path() {
  case $service_manager in
  supervisor) printf '%s/%s.conf' "$(landfall_supervisor_dir)" "$service_name" ;;
  *)
    if [ "$1" = socket ]; then
      printf '%s/%s.socket' "$(landfall_unit_dir "$service_manager")" "$service_name"
    else
      printf '%s/%s.service' "$(landfall_unit_dir "$service_manager")" "$service_name"
    fi
    ;;
  esac
}

# landfall_definitions_installed DIR: for a deploy user that is not root,
# whether each system definition of the release in DIR is installed as
# the release needs it. Only root installs one (a definition says what
# root starts, and as whom): when one differs, it is written beside the
# artifact's log for an administrator to review and install, and the
# commands to do so are said.
landfall_definitions_installed() {
  ok=0
  for f in unit socket; do
    [ -f "$1/.landfall-service/$f" ] || continue
    want="${1%/releases/*}/.landfall/$service_name.$f"
    dst=$(landfall_definition_path "$f")
    landfall_definition "$1" "$f" >"$want.$$" && mv -f "$want.$$" "$want" || {
      printf 'cannot write %s\n' "$want"
      return 1
    }
    cmp -s "$want" "$dst" 2>/dev/null && continue
    ok=1
    case $service_manager.$f in
    systemd.socket) then="systemctl daemon-reload && systemctl enable --now $service_name.socket" ;;
    systemd.*) then="systemctl daemon-reload && systemctl enable $service_name.service" ;;
    *) then="supervisorctl update $service_name" ;;
    esac
    printf 'the definition %s of service %s is not the one this release needs, and only root installs definitions: copy %s, review the copy (it says what root starts, and as whom), then as root: install -m 644 -T COPY %s && %s\n' \
      "$dst" "$service_name" "$want" "$dst" "$then"
  done
  return "$ok"
}

# landfall_environment_readable DIR: whether the account the service runs
# as may read the environment of the release in DIR (the launcher reads
# it, as that account). A private one is given to the account's group
# when the deploy user may do so (root may; another user only for a group
# it belongs to).
landfall_environment_readable() {
  e="$1/.landfall-service/env"
  [ -n "$service_user" ] && [ "$service_user" != "$(id -un)" ] || return 0
  [ -f "$e" ] || return 0
  # shellcheck disable=SC2012 # The mode, as ls prints it, is all that is read.
  case $(ls -ln "$e" | cut -c8) in r) return 0 ;; esac
  g=$(id -gn "$service_user" 2>/dev/null) || {
    printf 'the service runs as %s, an account this host does not know\n' "$service_user"
    return 1
  }
  if chgrp "$g" "$e" 2>/dev/null && chmod 640 "$e"; then
    return 0
  fi
  printf 'the service runs as %s, which may not read its private environment %s: make %s a member of group %s\n' \
    "$service_user" "$e" "$(id -un)" "$g"
  return 1
}

# landfall_may_install MANAGER: whether the deploy user installs and
# removes the definitions of MANAGER's services itself: its own systemd's,
# or any as root.
landfall_may_install() {
  [ "$1" = systemd-user ] || [ "$(id -u)" = 0 ]
}

# landfall_systemctl MANAGER ARGS...: systemctl of the system (as root) or
# of the user.
landfall_systemctl() {
  if [ "$1" = systemd-user ]; then
    shift
    XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/run/user/$(id -u)} systemctl --user "$@"
  else
    shift
    landfall_as_root systemctl "$@"
  fi
}

# landfall_unit_dir MANAGER: where the units of MANAGER go.
landfall_unit_dir() {
  if [ "$1" = systemd-user ]; then
    printf '%s/systemd/user' "${XDG_CONFIG_HOME:-$HOME/.config}"
  else
    printf '/etc/systemd/system'
  fi
}

# landfall_first TEST PATH...: prints the first PATH of which `test TEST
# PATH` holds (Debian's layout first, then the others'); fails if none.
landfall_first() {
  first_test=$1
  shift
  for first_path in "$@"; do
    if test "$first_test" "$first_path"; then
      printf '%s' "$first_path"
      return 0
    fi
  done
  return 1
}

# landfall_supervisor_dir: where supervisord reads programs from.
landfall_supervisor_dir() {
  landfall_first -d /etc/supervisor/conf.d /etc/supervisord.d
}

# landfall_supervisor_conf: supervisord's configuration, which
# supervisorctl is told with -c (it would otherwise look in the directory
# it is started from, which is the deploy user's to choose).
landfall_supervisor_conf() {
  landfall_first -f /etc/supervisor/supervisord.conf /etc/supervisord.conf
}

# landfall_supervisorctl ARGS...: supervisorctl, as root, with supervisord's
# configuration (these are the commands `init --sudoers` allows).
landfall_supervisorctl() {
  landfall_as_root supervisorctl -c "$(landfall_supervisor_conf)" "$@"
}

# landfall_install PATH DIR FILE MODE: puts the definition FILE (unit,
# socket) of the service the release in DIR recorded where its manager
# reads it (written whole, then renamed), unless the copy of what PATH
# last installed there, .landfall/service.FILE, holds the same. Returns 0
# if it changed, 1 if it did not, 2 (saying why on stderr) if it could not
# be written: the caller switches back then. A deploy user that is not
# root installs no system definition: it may only go on if root installed
# this one (see landfall_definitions_installed).
landfall_install() {
  record="$1/.landfall/service.$3" dst=$(landfall_definition_path "$3")
  landfall_definition "$2" "$3" >"$record.new" || {
    printf 'landfall: cannot write %s.new\n' "$record" >&2
    return 2
  }
  if [ -e "$dst" ] && cmp -s "$record.new" "$record" 2>/dev/null; then
    rm -f "$record.new"
    return 1
  fi
  if [ "$service_manager" = systemd-user ]; then
    mkdir -p "${dst%/*}" && install -m "$4" "$record.new" "$dst.landfall-new" && mv -f "$dst.landfall-new" "$dst"
  elif [ "$(id -u)" = 0 ]; then
    install -m "$4" "$record.new" "$dst.landfall-new" && mv -f "$dst.landfall-new" "$dst"
  else
    cmp -s "$record.new" "$dst"
  fi || {
    printf 'landfall: cannot install %s (only root installs a system definition)\n' "$dst" >&2
    rm -f "$record.new"
    return 2
  }
  mv -f "$record.new" "$record" || {
    printf 'landfall: cannot record %s\n' "$record" >&2
    return 2
  }
}

# landfall_reloadable DIR OLD: whether the service of the release in DIR
# may be reloaded rather than restarted after the one in OLD: it asks for
# reloads, and the binary it runs, its launcher, environment and definition
# are the same.
landfall_reloadable() {
  [ "$service_reload" = 1 ] && [ -n "$2" ] && [ -n "$service_bin" ] || return 1
  cmp -s "$1/$service_bin" "$2/$service_bin" || return 1
  for f in run env unit socket; do
    f=".landfall-service/$f"
    if [ -e "$1/$f" ] || [ -e "$2/$f" ]; then
      cmp -s "$1/$f" "$2/$f" || return 1
    fi
  done
}

# landfall_service_switch PATH DIR OLD OLDDIR: after `current` switched to
# the release in DIR (whose activation is read): removes the service OLD
# (`MANAGER NAME`, of the release in OLDDIR) if DIR runs another or none,
# then starts DIR's service.
landfall_service_switch() {
  if [ -n "$3" ] && [ "$3" != "$service_manager $service_name" ]; then
    # shellcheck disable=SC2086 # OLD is two words.
    landfall_service_remove "$1" $3 || return 1
  fi
  [ -n "$service_manager" ] || return 0
  if [ "$3" = "$service_manager $service_name" ]; then
    landfall_service_start "$1" "$2" "$4"
  else
    landfall_service_start "$1" "$2" ''
  fi
}

# landfall_service_start PATH DIR OLDDIR: installs the definition of the
# service the release in DIR recorded and restarts the service (or reloads
# it, see landfall_reloadable: OLDDIR is the release it ran from).
landfall_service_start() {
  p=$1 s="$2/.landfall-service" name=$service_name m=$service_manager
  printf 'hook\tservice\n'
  reload=
  if landfall_reloadable "$2" "$3"; then
    reload=1
  fi
  if [ -n "${LANDFALL_LOCAL:-}" ]; then
    if [ -n "$reload" ] && pid=$(landfall_process_pid "$p"); then
      kill -HUP "$pid" || return 1
      printf 'reloaded\t%s\n' "$name"
      return 0
    fi
    landfall_process_start "$p" "$2" >&2 || return 1
    printf 'restarted\t%s\n' "$name"
    return 0
  fi
  case $m in
  systemd | systemd-user)
    d=$(landfall_unit_dir "$m")
    changed='' socket=''
    landfall_install "$p" "$2" unit 644
    case $? in 0) changed=1 ;; 2) return 1 ;; esac
    if [ -f "$s/socket" ]; then
      landfall_install "$p" "$2" socket 644
      case $? in 0) socket=1 ;; 2) return 1 ;; esac
    elif [ -f "$d/$name.socket" ] && landfall_may_install "$m"; then
      landfall_systemctl "$m" disable --quiet --now "$name.socket" >&2
      rm -f "$d/$name.socket" "$p/.landfall/service.socket"
      changed=1
    fi
    if landfall_may_install "$m"; then
      if [ -n "$changed$socket" ]; then
        landfall_systemctl "$m" daemon-reload >&2 || return 1
      fi
      if [ -f "$s/socket" ]; then
        # New addresses: the service lets go of the old sockets, which are
        # then made anew.
        if [ -n "$socket" ]; then
          landfall_systemctl "$m" stop "$name.service" "$name.socket" >&2
        fi
        landfall_systemctl "$m" enable --quiet --now "$name.socket" >&2 || return 1
      fi
      landfall_systemctl "$m" enable --quiet "$name.service" >&2 || return 1
    elif [ -f "$s/socket" ] && ! systemctl is-active --quiet "$name.socket"; then
      # Root installed and enabled the units (landfall_service_check saw
      # them); a socket stopped since is started again.
      landfall_systemctl "$m" start "$name.socket" >&2 || return 1
    fi
    if [ -n "$reload" ] && [ -z "$changed$socket" ]; then
      landfall_systemctl "$m" reload "$name.service" >&2 || return 1
      printf 'reloaded\t%s\n' "$name"
      return 0
    fi
    landfall_systemctl "$m" restart "$name.service" >&2 || return 1
    ;;
  supervisor)
    landfall_install "$p" "$2" unit 644
    installed=$?
    if [ "$installed" = 2 ]; then
      return 1
    elif [ "$installed" = 0 ] && landfall_may_install "$m"; then
      # A changed program is stopped, replaced and started again.
      landfall_supervisorctl reread >&2 &&
        landfall_supervisorctl update "$name" >&2 || return 1
    elif [ -n "$reload" ]; then
      landfall_supervisorctl signal HUP "$name" >&2 || return 1
      printf 'reloaded\t%s\n' "$name"
      return 0
    else
      landfall_supervisorctl restart "$name" >&2 || return 1
    fi
    landfall_supervisor_running "$name" || return 1
    ;;
  esac
  printf 'restarted\t%s\n' "$name"
}

# landfall_supervisor_running NAME: waits (at most 30 seconds) until
# supervisord says program NAME is RUNNING, starting it if it is stopped;
# says what it is in otherwise.
landfall_supervisor_running() {
  n=0 started=''
  while [ "$n" -lt 150 ]; do
    st=$(landfall_supervisorctl status "$1" 2>&1)
    case $st in
    *" RUNNING "*) return 0 ;;
    *" STARTING"* | *" BACKOFF"*) ;;
    *" STOPPED"* | *" EXITED"*)
      [ -z "$started" ] || break
      started=1
      landfall_supervisorctl start "$1" >&2
      ;;
    *) break ;;
    esac
    sleep 0.2
    n=$((n + 1))
  done
  printf '%s\n' "$st" >&2
  return 1
}

# landfall_service_remove PATH MANAGER NAME: stops the service NAME and
# removes its definition.
landfall_service_remove() {
  p=$1 m=$2 name=$3
  if [ -n "${LANDFALL_LOCAL:-}" ]; then
    landfall_process_stop "$p"
    printf 'removed-service\t%s\n' "$name"
    return 0
  fi
  case $m in
  systemd | systemd-user)
    d=$(landfall_unit_dir "$m")
    landfall_systemctl "$m" disable --quiet --now "$name.service" >&2
    if [ -f "$d/$name.socket" ]; then
      landfall_systemctl "$m" disable --quiet --now "$name.socket" >&2
    fi
    if landfall_may_install "$m"; then
      rm -f "$d/$name.service" "$d/$name.socket"
      landfall_systemctl "$m" daemon-reload >&2
    else
      printf 'landfall: service %s is stopped and disabled; only root removes %s\n' "$name" "$d/$name.service" >&2
    fi
    ;;
  supervisor)
    d=$(landfall_supervisor_dir) || return 0
    landfall_supervisorctl stop "$name" >&2
    if landfall_may_install "$m"; then
      rm -f "$d/$name.conf"
      landfall_supervisorctl reread >&2 && landfall_supervisorctl update "$name" >&2
    else
      printf 'landfall: service %s is stopped; only root removes %s\n' "$name" "$d/$name.conf" >&2
    fi
    ;;
  esac
  rm -f "$p/.landfall/service.unit" "$p/.landfall/service.socket"
  printf 'removed-service\t%s\n' "$name"
}

# landfall_process_start PATH DIR: under `--local`, where no service
# manager is used, runs the service of the release in DIR as a background
# process of its own session, its output appended to .landfall/service.log
# and its pid in .landfall/service.pid, after stopping the one running.
landfall_process_start() {
  landfall_process_stop "$1"
  (
    set -a
    # shellcheck source=/dev/null # The release's own, written by landfall.
    . "$2/.landfall-service/env" || exit 1
    set +a
    LANDFALL_PATH=$1
    export LANDFALL_PATH
    # No journal keeps its output: the launcher writes the time of each line.
    unset LANDFALL_LOG
    trap - HUP PIPE
    if command -v setsid >/dev/null 2>&1; then
      exec setsid "$1/current/.landfall-service/run"
    fi
    exec "$1/current/.landfall-service/run"
  ) </dev/null >>"$1/.landfall/service.log" 2>&1 &
  printf '%s\n' "$!" >"$1/.landfall/service.pid" || return 1
  # A command that cannot start at all is seen at once (its status and
  # log are reported by landfall_service_cause).
  sleep 0.1
  if landfall_process_gone "$!"; then
    printf 'landfall: the service exited at once\n' >&2
    return 1
  fi
}

# landfall_process_gone PID: whether the process PID has ended: it is not
# there, or it is a zombie (it exited, and this shell, its parent, has
# not waited for it yet).
landfall_process_gone() {
  kill -0 "$1" 2>/dev/null || return 0
  [ -r "/proc/$1/stat" ] || return 1
  gone_stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  case ${gone_stat##*)} in " Z "*) return 0 ;; esac
  return 1
}

# landfall_process_pid PATH: the pid of the service landfall_process_start
# started, if it still runs in a release of PATH.
landfall_process_pid() {
  pid=$(cat "$1/.landfall/service.pid" 2>/dev/null) || return 1
  case $pid in '' | *[!0-9]*) return 1 ;; esac
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -d "/proc/$pid" ]; then
    real=$(cd -P "$1" 2>/dev/null && pwd -P) || return 1
    case $(readlink "/proc/$pid/cwd" 2>/dev/null) in
    "$real"/releases/*) ;;
    *) return 1 ;;
    esac
  fi
  printf '%s' "$pid"
}

# landfall_process_stop PATH: stops the service landfall_process_start
# started: TERM, then KILL once stop_timeout has passed.
landfall_process_stop() {
  if pid=$(landfall_process_pid "$1"); then
    kill -TERM "$pid" 2>/dev/null
    n=0
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$n" = $((${stop_timeout:-30} * 10)) ]; then
        kill -KILL "$pid" 2>/dev/null
      elif [ "$n" -gt $((${stop_timeout:-30} * 10 + 50)) ]; then
        break
      fi
      sleep 0.1
      n=$((n + 1))
    done
  fi
  rm -f "$1/.landfall/service.pid"
}

# landfall_service_state INDEX PATH: reports the state of the service the
# current release of PATH (numbered INDEX) runs: `service`, its manager,
# name, state, pid and since when.
landfall_service_state() {
  (
    index=$1 p=$2
    landfall_recorded "$p/current" 2>/dev/null && [ -n "$service_manager" ] || exit 0
    m=$service_manager name=$service_name state=unknown pid='' since=''
    if [ -n "${LANDFALL_LOCAL:-}" ]; then
      m=process
      if pid=$(landfall_process_pid "$p"); then
        state=running
        since=$(date -r "$p/.landfall/service.pid" '+%Y-%m-%d %H:%M:%S %Z' 2>/dev/null)
      else
        state=stopped pid=
      fi
    else
      case $m in
      systemd | systemd-user)
        if [ "$m" = systemd ]; then
          out=$(systemctl show "$name.service" -p ActiveState -p SubState -p MainPID -p ActiveEnterTimestamp 2>/dev/null)
        else
          out=$(landfall_systemctl "$m" show "$name.service" -p ActiveState -p SubState -p MainPID -p ActiveEnterTimestamp 2>/dev/null)
        fi
        state=$(printf '%s\n' "$out" | sed -n 's/^ActiveState=//p')
        sub=$(printf '%s\n' "$out" | sed -n 's/^SubState=//p')
        [ -z "$sub" ] || state="$state ($sub)"
        pid=$(printf '%s\n' "$out" | sed -n 's/^MainPID=//p')
        since=$(printf '%s\n' "$out" | sed -n 's/^ActiveEnterTimestamp=//p')
        [ "$pid" != 0 ] || pid=
        ;;
      supervisor)
        # NAME STATE pid PID, uptime H:MM:SS (or a description)
        out=$(landfall_supervisorctl status "$name" 2>/dev/null | head -n 1)
        # shellcheck disable=SC2086 # Its words are the fields wanted.
        set -- $out
        state=${2:-unknown}
        if [ "${3:-}" = pid ]; then
          pid=${4%,}
          since="up ${6:-}"
        fi
        ;;
      esac
    fi
    printf 'service\t%s\t%s\t%s\t%s\t%s\t%s\n' "$index" "$m" "$name" "${state:-unknown}" "$pid" "$since"
  )
}

# landfall_unit_show MANAGER UNIT PROPERTIES: systemd's PROPERTIES
# (separated by commas) of UNIT, `NAME=VALUE` a line. Reading them needs
# no privilege: a system unit's are read without sudo.
landfall_unit_show() {
  if [ "$1" = systemd ]; then
    systemctl show "$2" -p "$3" 2>/dev/null
  else
    landfall_systemctl "$1" show "$2" -p "$3" 2>/dev/null
  fi
}

# landfall_service_verdict DIR: asks the manager of the service the
# release in DIR recorded (its activation read) what became of it, and
# sets verdict_state: `running`; `down`, not running but not given up
# (starting, between restarts it still has: systemd's `activating
# (auto-restart)`, supervisord's BACKOFF; a socket-activated unit that
# exited, which the next connection starts again); `gave-up`, never to
# run again unless started anew (systemd's `failed`, whatever its
# Result, or `inactive` with no socket; supervisord's FATAL or STOPPED;
# under --local, the process is gone); verdict, the manager's own words;
# verdict_manager, `process` under --local, else the manager. Fails if
# the manager does not answer. Under --local, the exit status of a
# process this shell started is its own to collect (wait), once: it is
# kept in verdict_exit.
landfall_service_verdict() {
  verdict_state='' verdict='' verdict_manager=$service_manager
  if [ -n "${LANDFALL_LOCAL:-}" ]; then
    verdict_manager=process
    # DIR is PATH/releases/RELEASE.
    if verdict_pid=$(landfall_process_pid "${1%/releases/*}"); then
      verdict_state=running verdict="running (pid $verdict_pid)"
      return 0
    fi
    verdict_pid=$(cat "${1%/releases/*}/.landfall/service.pid" 2>/dev/null)
    case $verdict_pid in
    '' | *[!0-9]*) verdict_state=gave-up verdict='not running' ;;
    *)
      if ! landfall_process_gone "$verdict_pid"; then
        # There, but not (yet) in a release: starting, or another
        # process that took its pid.
        verdict_state=down verdict="pid $verdict_pid is not the service's"
        return 0
      fi
      verdict_state=gave-up
      if [ "${verdict_exit_pid:-}" != "$verdict_pid" ]; then
        verdict_exit_pid=$verdict_pid
        wait "$verdict_pid" 2>/dev/null
        verdict_exit=$?
      fi
      case $verdict_exit in
      127) verdict="exited (pid $verdict_pid)" ;;
      *)
        if [ "$verdict_exit" -gt 128 ]; then
          verdict="killed by signal $((verdict_exit - 128)) (pid $verdict_pid)"
        else
          verdict="exited with status $verdict_exit (pid $verdict_pid)"
        fi
        ;;
      esac
      ;;
    esac
    return 0
  fi
  case $service_manager in
  systemd | systemd-user)
    verdict_show=$(landfall_unit_show "$service_manager" "$service_name.service" \
      ActiveState,SubState,Result,NRestarts,ExecMainCode,ExecMainStatus) || return 1
    v_active='' v_sub='' v_result='' v_restarts=0 v_code=0 v_status=''
    while IFS='=' read -r v_key v_value; do
      case $v_key in
      ActiveState) v_active=$v_value ;;
      SubState) v_sub=$v_value ;;
      Result) v_result=$v_value ;;
      NRestarts) v_restarts=$v_value ;;
      ExecMainCode) v_code=$v_value ;;
      ExecMainStatus) v_status=$v_value ;;
      esac
    done <<EOF
$verdict_show
EOF
    [ -n "$v_active" ] || return 1
    # As `systemctl status` says it: `failed (Result: exit-code)`,
    # `activating (auto-restart) (Result: exit-code)`.
    verdict=$v_active
    [ "$v_sub" = "$v_active" ] || verdict="$verdict ($v_sub)"
    if [ -n "$v_result" ] && [ "$v_result" != success ]; then
      verdict="$verdict (Result: $v_result)"
    fi
    case $v_restarts in
    '' | 0) ;;
    1) verdict="$verdict, restarted once" ;;
    *) verdict="$verdict, restarted $v_restarts times" ;;
    esac
    # ExecMainCode says how the last run ended: 1 it exited, 2 it was
    # killed, 3 it dumped core.
    case $v_code in
    1) verdict="$verdict, its last run exited with status $v_status" ;;
    2 | 3) verdict="$verdict, its last run was killed by signal $v_status" ;;
    esac
    case $v_active in
    active | reloading) verdict_state=running verdict="$v_active ($v_sub)" ;;
    failed) verdict_state=gave-up ;;
    inactive)
      if [ -f "$1/.landfall-service/socket" ]; then
        verdict_state=down
      else
        verdict_state=gave-up
      fi
      ;;
    *) verdict_state=down ;;
    esac
    ;;
  supervisor)
    # NAME STATE DESCRIPTION, in columns.
    verdict_show=$(landfall_supervisorctl status "$service_name" 2>&1 | head -n 1)
    verdict=$(printf '%s\n' "$verdict_show" | sed 's/^[^ ]* *//; s/  */ /g')
    case ${verdict%% *} in
    RUNNING) verdict_state=running ;;
    FATAL | STOPPED) verdict_state=gave-up ;;
    STARTING | BACKOFF | EXITED | STOPPING) verdict_state=down ;;
    *) return 1 ;;
    esac
    ;;
  *) return 1 ;;
  esac
}

# landfall_service_cause DIR STEP: after STEP failed after the switch,
# reports what the manager says of the service the release in DIR
# recorded (its activation read) and the last 20 lines of its own log:
# `verdict` (manager, state and words, see landfall_service_verdict),
# `service-log` (where the lines are from) and a `service-log-line` for
# each, or `service-log-unread` (where, and why it cannot be read). The
# service's own failure (STEP `service` or `ready`) always reports it; a
# hook's, only when the service is not running.
landfall_service_cause() {
  [ -n "${service_manager:-}" ] || return 0
  if ! landfall_service_verdict "$1"; then
    verdict_state=unknown verdict='the manager did not answer'
  fi
  case $2 in service | ready) ;; *) [ "$verdict_state" != running ] || return 0 ;; esac
  printf 'verdict\t%s\t%s\t%s\n' "$verdict_manager" "$verdict_state" "$verdict"
  if [ -n "${LANDFALL_LOCAL:-}" ] || [ "$service_manager" = supervisor ]; then
    if [ -n "${LANDFALL_LOCAL:-}" ]; then
      cause_from="${1%/releases/*}/.landfall/service.log"
    else
      cause_from="/var/log/supervisor/$service_name.log"
    fi
    if [ ! -r "$cause_from" ]; then
      printf 'service-log-unread\t%s\t%s cannot read it\n' "$cause_from" "$(id -un 2>/dev/null || id -u)"
      return 0
    fi
    cause_lines=$(tail -n 20 "$cause_from" 2>&1)
  else
    if [ "$service_manager" = systemd-user ]; then
      set -- --user-unit "$service_name.service"
    else
      set -- -u "$service_name.service"
    fi
    cause_from="journalctl $*"
    if ! command -v journalctl >/dev/null 2>&1; then
      printf 'service-log-unread\t%s\tjournalctl is not installed\n' "$cause_from"
      return 0
    fi
    cause_lines=$(journalctl "$@" -n 20 --no-pager -o cat 2>&1)
    case $cause_lines in
    *'not seeing messages from other users'* | *'insufficient permissions'* | *'No journal files were'*)
      printf 'service-log-unread\t%s\t%s may not read the journal of the system (it is in neither group systemd-journal nor adm)\n' \
        "$cause_from" "$(id -un 2>/dev/null || id -u)"
      return 0
      ;;
    esac
  fi
  printf 'service-log\t%s\n' "$cause_from"
  [ -n "$cause_lines" ] || return 0
  printf '%s\n' "$cause_lines" | while IFS= read -r cause_line; do
    printf 'service-log-line\t%s\n' "$cause_line"
  done
}

# landfall_service_logs PATH LINES FOLLOW ALL: prints the last LINES lines
# of the log of the service the current release of PATH runs, each after
# its time: with ALL=1 every release's, else those since the current
# release's service started (see landfall_log_lines); with FOLLOW=1 it
# goes on printing what the service writes next, of any release. Exits 13
# if it runs none. A follower gets the default dispositions back, so that
# the hangup of a connection that ends stops it.
landfall_service_logs() {
  if ! landfall_recorded "$1/current" 2>/dev/null || [ -z "$service_manager" ]; then
    printf 'the current release of %s runs no service\n' "$1" >&2
    exit 13
  fi
  trap - HUP PIPE
  n=$2 follow=$3 all=$4
  release=$(cd -P -- "$1/current" && pwd -P) || return 1
  release=${release##*/}
  if [ -n "${LANDFALL_LOCAL:-}" ] || [ "$service_manager" = supervisor ]; then
    # The launcher wrote the time before each line.
    if [ -n "${LANDFALL_LOCAL:-}" ]; then
      log="$1/.landfall/service.log"
    else
      log="/var/log/supervisor/$service_name.log"
    fi
    if [ "$follow" != 1 ]; then
      landfall_log_lines "$n" "$all" "$release" <"$log"
      return
    fi
    # What was written before the follower starts, then what comes after.
    size=0
    if [ -e "$log" ]; then
      size=$(wc -c <"$log" | tr -d ' ') || return 1
      head -c "$size" "$log" | landfall_log_lines "$n" "$all" "$release" || return 1
    fi
    exec tail -c "+$((size + 1))" -F "$log"
  fi
  if ! command -v journalctl >/dev/null 2>&1; then
    printf 'journalctl is not installed\n' >&2
    return 1
  fi
  # The journal keeps the time of each line, said in UTC.
  if [ "$service_manager" = systemd-user ]; then
    set -- journalctl --no-pager --utc -o short-iso-precise --user-unit "$service_name.service"
  else
    set -- journalctl --no-pager --utc -o short-iso-precise -u "$service_name.service"
  fi
  if [ "$follow" != 1 ]; then
    "$@" | landfall_log_lines "$n" "$all" "$release"
    return
  fi
  # The lines read, after the cursor of the last one, where the follower
  # starts.
  lines=$("$@" --show-cursor | landfall_log_lines "$n" "$all" "$release" cursor) || return 1
  nl='
'
  cursor=${lines%%"$nl"*}
  case $lines in *"$nl"*) printf '%s\n' "${lines#*"$nl"}" ;; esac
  if [ -n "$cursor" ]; then
    exec "$@" -f -n all --after-cursor "$cursor"
  fi
  exec "$@" -f -n 0
}

# landfall_log_lines LINES ALL RELEASE [cursor]: of the log on stdin, each
# line after its time (the launcher's, or the journal's `short-iso`),
# prints the last LINES lines. The launcher marks where each release's
# service started (`-- release ID started --`): with ALL=1 the lines of
# every release, led by the line that says where the release of the first
# of them started; else the lines from the start of RELEASE's service
# that followed another release's on, or all of them when the log does not
# end with RELEASE's (a log written before the launcher marked releases).
# With `cursor`, first prints the journal's cursor of the last line (an
# empty line if there is none).
landfall_log_lines() {
  awk -v n="$1" -v all="$2" -v current="$3" -v cursor="${4:-}" '
    # The journal says where a boot starts, and the cursor, in lines of
    # its own.
    /^-- / {
      if (substr($0, 1, 11) == "-- cursor: ") at = substr($0, 12)
      next
    }
    {
      if (NF >= 6 && $(NF - 4) == "--" && $(NF - 3) == "release" && $(NF - 1) == "started" &&
        $NF == "--" && (NF == 6 || $(NF - 5) ~ /:$/)) {
        started = $0
        if ($(NF - 2) != current) ours = 0
        else if (!ours) { ours = 1; mine = 0 }
      }
      if (n > 0) {
        every[seen % n] = $0; lead[seen % n] = started; seen++
        if (ours) { since[mine % n] = $0; mine++ }
      }
    }
    END {
      if (cursor != "") print at
      if (!all && ours) {
        for (i = mine > n ? mine - n : 0; i < mine; i++) print since[i % n]
        exit
      }
      from = seen > n ? seen - n : 0
      if (all && from < seen && lead[from % n] != "" && lead[from % n] != every[from % n])
        print lead[from % n]
      for (i = from; i < seen; i++) print every[i % n]
    }'
}

# landfall_exec DIR INPUT LOGS START END CMD...: runs the command CMD (its
# words) from DIR, or from the home directory when DIR is empty, with its
# output and errors on stdout as they come and, with INPUT=1, the script's
# own standard input as its standard input (landfall gives the script as
# the shell's command then, and streams the input), else nothing; with
# INPUT=t, on the terminal it was given, as it is. Before it runs, START
# (one line of JSON: who runs what, where) is appended to the log of each
# path in LOGS (one a line), so that a command that ends this shell (kill
# -9 $PPID, kill 0) is on record all the same; a log that cannot be
# written to refuses the command, which does not run. Once it ended, an
# entry of the host's time, END (the fields of the command's entry but
# those two) and its exit status is appended there. Exits with the
# command's status.
landfall_exec() {
  dir=$1 input=$2 logs=$3 start=$4 end=$5
  shift 5
  if [ -n "$dir" ]; then
    cd "$dir" 2>/dev/null || {
      printf 'landfall: %s is not there (has it been deployed?)\n' "$dir" >&2
      exit 70
    }
  else
    cd 2>/dev/null || cd /
  fi
  unlogged=$(printf '%s\n' "$logs" | while IFS= read -r p; do
    [ -z "$p" ] || [ ! -d "$p/.landfall" ] || landfall_log "$p" "$start"
  done)
  if [ -n "$unlogged" ]; then
    printf '%s\n' "$unlogged" | while IFS="$(printf '\t')" read -r _ log; do
      printf 'landfall: cannot record the command in %s (a full disk, or a link): it did not run\n' "$log" >&2
    done
    exit 70
  fi
  if [ "$input" = t ]; then
    (trap - HUP PIPE INT && exec "$@")
  elif [ "$input" = 1 ]; then
    (trap - HUP PIPE && exec "$@") 2>&1
  else
    (trap - HUP PIPE && exec "$@") </dev/null 2>&1
  fi
  status=$?
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
  printf '%s\n' "$logs" | while IFS= read -r p; do
    [ -z "$p" ] || [ ! -d "$p/.landfall" ] || landfall_log "$p" "{\"time\":\"$now\",$end,\"status\":$status}" >/dev/null
  done
  exit "$status"
}

# landfall_cleanup PATH KEEP PREVIOUS: removes releases beyond the KEEP
# most recently activated ones, never the current one nor PREVIOUS.
landfall_cleanup() {
  p=$1 keep=$2 prev=$3
  landfall_current "$p"
  n=0
  landfall_releases "$p/releases" | while IFS= read -r r; do
    n=$((n + 1))
    if [ "$n" -le "$keep" ] || [ "$r" = "$c" ] || [ "$r" = "$prev" ]; then
      continue
    fi
    rm -rf "$p/releases/$r" "$p/.landfall/manifests/$r"
    printf 'removed\t%s\n' "$r"
  done
}
