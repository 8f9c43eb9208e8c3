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
# Results are reported as tab-separated lines on stdout; hook output goes
# to stderr. Exit statuses: 0 done, 3 locked by another deploy, 4 the
# path is not the artifact's to lock (see landfall_owns), 10 pre_activate
# failed (current untouched), 11 activation failed after the switch, 12 the
# build hook failed (the upload is removed), 70 an unexpected error.

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
    c=$(readlink "$p/current" 2>/dev/null) || c=
    printf 'current\t%s\t%s\n' "$i" "${c##*/}"
    if [ -d "$p/releases" ]; then
      # shellcheck disable=SC2012 # Only ls sorts by mtime; ids are hex.
      ls -1t "$p/releases" | while IFS= read -r r; do
        case $r in *[!0-9a-f]*) continue ;; esac
        printf 'release\t%s\t%s\n' "$i" "$r"
        if [ "$detail" = 1 ] && [ -f "$p/releases/$r/.landfall-release" ]; then
          printf 'provenance\t%s\t%s\t%s\n' "$i" "$r" "$(head -n 1 "$p/releases/$r/.landfall-release")"
        fi
      done
    fi
    if [ -f "$p/.landfall/lock" ]; then
      printf 'lock\t%s\t%s\n' "$i" "$(head -n 1 "$p/.landfall/lock")"
    fi
    # The release the log last confirmed running: an activation is logged
    # once its health passed, a switch back once it is done.
    if [ -f "$p/.landfall/log" ]; then
      printf 'confirmed\t%s\t%s\n' "$i" "$(tail -n 1 "$p/.landfall/log" |
        sed -n 's/.*"release":"\([0-9a-f]*\)".*/\1/p')"
    fi
    if [ "$detail" = 1 ] && [ -f "$p/.landfall/log" ]; then
      tail -n 200 "$p/.landfall/log" | while IFS= read -r line; do
        printf 'log\t%s\t%s\n' "$i" "$line"
      done
    fi
    i=$((i + 1))
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
  landfall_owns "$1" "$4" && return 0
  rm -f "$1/.landfall/lock"
  return 1
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

# landfall_owns PATH NAME: whether PATH holds the releases of NAME (a
# project and an artifact), as recorded when it was first deployed: no
# other artifact deploys into it, switches its `current` or writes to its
# log. Fails, saying why on stderr, if it is another's or if the record
# cannot be written.
landfall_owns() {
  f="$1/.landfall/artifact"
  if [ -L "$f" ]; then
    printf '%s is a link, which landfall did not make\n' "$f" >&2
    return 1
  fi
  if [ ! -f "$f" ]; then
    printf '%s\n' "$2" >"$f" 2>/dev/null && return 0
    rm -f "$f"
    printf 'cannot write %s\n' "$f" >&2
    return 1
  fi
  o=$(head -n 1 "$f")
  [ "$o" = "$2" ] && return 0
  printf '%s holds the releases of %s, not of %s (if it is to change hands, remove %s)\n' \
    "$1" "$o" "$2" "$f" >&2
  return 1
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

# landfall_claim INDEX PATH RELEASE OWNER BREAK GIT NAME SHARED...: unless
# RELEASE is current and unlocked (an empty RELEASE never is), takes the
# deploy lock of PATH (for artifact NAME) and prepares the directories a
# release needs (the bare repository too with GIT=1). Reports, for the
# path numbered INDEX, `held` with the current release as read under the
# lock (and `created` with the outermost directory it made, for a path
# that did not exist: what to remove if the run goes no further), `busy`
# with the holder of the lock, or `unclaimed` with the reason the path
# could not be locked or its directories made (no lock, and nothing it
# made, is then left). It never exits: the other paths of the host go on.
landfall_claim() {
  i=$1 p=$2 id=$3 owner=$4 brk=$5 git=$6 name=$7
  shift 7
  c=$(readlink "$p/current" 2>/dev/null) || c=
  if [ -n "$id" ] && [ "${c##*/}" = "$id" ] && [ ! -f "$p/.landfall/lock" ]; then
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
  c=$(readlink "$p/current" 2>/dev/null) || c=
  printf 'held\t%s\t%s\n' "$i" "${c##*/}"
  [ -z "$new" ] || printf 'created\t%s\t%s\n' "$i" "$new"
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
  g=$(ps -o pgid= -p $$ 2>/dev/null | tr -d ' ')
  [ -n "$g" ] || return 0
  # Written anew, never through a link that stands there.
  rm -f "$1/.landfall/steps"
  printf '%s\n' "$g" >"$1/.landfall/steps" || return 0
  steps_file="$1/.landfall/steps"
  trap 'rm -f "$steps_file"' EXIT
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
  c=$(readlink "$p/current" 2>/dev/null) || c=
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

# landfall_link DIR NAME TARGET: a symlink of a release, replacing whatever
# is at NAME.
landfall_link() {
  f="$1/$2"
  mkdir -p "${f%/*}" && rm -rf "$f" && ln -s "$3" "$f" || landfall_fail "cannot link $f"
}

# landfall_recorded DIR: reads the activation a release recorded
# (.landfall-activation in DIR, written by landfall with every value
# quoted) into hook_build, hook_pre_activate, hook_activate, hook_health,
# health_timeout and hook_timeout. Fails, with every hook empty, for a
# release that recorded none (one made before releases carried their
# activation).
landfall_recorded() {
  hook_build='' hook_pre_activate='' hook_activate='' hook_health=''
  health_timeout=1 hook_timeout=1
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
# .landfall-release (one line of JSON) and gives it its name. A release
# already complete keeps the provenance it was made with.
landfall_finalize() {
  if [ -d "$1/releases/$2" ]; then
    rm -rf "$1/releases/$2.partial"
  else
    printf '%s\n' "$3" >"$1/releases/$2.partial/.landfall-release" &&
      mv "$1/releases/$2.partial" "$1/releases/$2" || landfall_fail "cannot rename $1/releases/$2.partial"
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

# landfall_health DIR COMMAND TIMEOUT: runs COMMAND until it passes or
# TIMEOUT seconds have passed, each try stopped when the time is up; shows
# the output of the last try only. The time is also counted here, in
# tenths of a second, from what each pause and each try stopped at its
# limit took at the least, so that a clock that stands still cannot keep
# the loop going.
landfall_health() {
  printf 'hook\thealth\n'
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
    if [ "$(date +%s)" -ge "$deadline" ] || [ "$spent" -ge $(($3 * 10)) ]; then
      printf '%s\n' "$out" >&2
      return 1
    fi
    sleep 0.2
  done
}

# landfall_log PATH LINE: appends LINE to the log, or reports `unlogged`
# (the disk is full, or the log is a link landfall did not make, which it
# does not write through).
landfall_log() {
  if [ -L "$1/.landfall/log" ] || ! printf '%s\n' "$2" >>"$1/.landfall/log"; then
    printf 'unlogged\t%s\n' "$1/.landfall/log"
  fi
}

# landfall_activate PATH RELEASE PREVIOUS REVERT LOG_OK LOG_BACK: runs the
# activation RELEASE recorded: pre_activate, the switch of `current`,
# activate, and health polled for its timeout. When activate or health
# fail and REVERT=1, it switches back to PREVIOUS at once and runs what
# PREVIOUS recorded (see landfall_back). A release that recorded no
# activation is switched to with no hook run, and reported `unrecorded`.
landfall_activate() {
  p=$1 id=$2 prev=$3 revert=$4 log_ok=$5 log_back=$6
  rel="$p/releases/$id"
  [ -d "$rel" ] || landfall_fail "release $id is not on this host"
  landfall_steps "$p"
  landfall_recorded "$rel" || printf 'unrecorded\t%s\n' "$id"
  export LANDFALL_PATH="$p" LANDFALL_RELEASE="$id" LANDFALL_PREVIOUS="$prev"
  if [ -n "$hook_pre_activate" ] && ! landfall_hook pre_activate "$rel" "$hook_pre_activate" "$hook_timeout"; then
    printf 'failed\tpre_activate\n'
    exit 10
  fi
  # A release's mtime says when it was last activated; `keep` orders by it.
  touch "$rel"
  landfall_switch "$p" "$id"
  printf 'switched\t%s\n' "$id"
  failed=
  if [ -n "$hook_activate" ] && ! landfall_hook activate "$rel" "$hook_activate" "$hook_timeout"; then
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
  if [ "$revert" = 1 ]; then
    landfall_back "$p" "$id" "$prev" "$log_back"
  fi
  exit 11
}

# landfall_back PATH FROM TO LOG: switches back to TO (or removes `current`
# when there is none) and runs the activate and health hooks TO recorded.
landfall_back() {
  p=$1
  landfall_steps "$p"
  if [ -z "$3" ]; then
    rm -f "$p/current"
    landfall_log "$p" "$4"
    printf 'reverted\t\n'
    return 0
  fi
  to="$p/releases/$3"
  [ -d "$to" ] || landfall_fail "release $3 is not on this host"
  landfall_recorded "$to" || printf 'unrecorded\t%s\n' "$3"
  export LANDFALL_PATH="$p" LANDFALL_RELEASE="$3" LANDFALL_PREVIOUS="$2"
  touch "$to"
  landfall_switch "$p" "$3"
  landfall_log "$p" "$4"
  printf 'reverted\t%s\n' "$3"
  if [ -n "$hook_activate" ] && ! landfall_hook activate "$to" "$hook_activate" "$hook_timeout"; then
    printf 'revert-failed\tactivate\n'
    return 1
  fi
  if [ -n "$hook_health" ] && ! landfall_health "$to" "$hook_health" "$health_timeout"; then
    printf 'revert-failed\thealth\n'
    return 1
  fi
  return 0
}

# landfall_cleanup PATH KEEP PREVIOUS: removes releases beyond the KEEP
# most recently activated ones, never the current one nor PREVIOUS.
landfall_cleanup() {
  p=$1 keep=$2 prev=$3
  c=$(readlink "$p/current" 2>/dev/null) || c=
  c=${c##*/}
  n=0
  # shellcheck disable=SC2012 # Only ls sorts by mtime; ids are hex.
  ls -1t "$p/releases" | while IFS= read -r r; do
    case $r in *[!0-9a-f]*) continue ;; esac
    n=$((n + 1))
    if [ "$n" -le "$keep" ] || [ "$r" = "$c" ] || [ "$r" = "$prev" ]; then
      continue
    fi
    rm -rf "$p/releases/$r" "$p/.landfall/manifests/$r"
    printf 'removed\t%s\n' "$r"
  done
}
