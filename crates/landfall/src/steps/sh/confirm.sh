# The confirmation of an activation (`[artifact.X.rollout] confirm`): a
# host that activated a release waits to be confirmed over a new
# connection, and switches back by itself if it is not, in time.
#
# Arming writes the record .landfall/confirm (key=value lines: release,
# previous, seconds, deadline, token, log, then pid) and starts a watcher:
# a background subshell of the activation's shell (so it has every
# function), its input and output away from the connection, ignoring
# hangups like every step, which outlives the script, the connection and
# landfall. It sleeps the window once, then decides with a rename:
# confirm -> confirm.expired. The confirmation renames confirm ->
# confirm.done; exactly one of the two renames succeeds, so a watcher never
# acts after a confirmation, and a confirmation never counts once the
# watcher acted. Whatever switches a path back or activates it again
# disarms a watcher first, the same way (landfall_disarm).
#
# A watcher that wins switches back exactly as a failed activation does,
# writing what it reports to .landfall/confirm.out and its hooks' output
# to .landfall/confirm.err, releases the deploy lock if the run that armed
# it still holds it, and ends the record with `status=` and its exit
# status, for the confirmation (or a switch back) that comes later to read.

# landfall_record FILE KEY: the value of KEY in a record (its first line
# `KEY=...`); empty if there is none, or no record.
landfall_record() {
  sed -n "s/^$2=//p" "$1" 2>/dev/null | head -n 1
}

# landfall_arm PATH RELEASE PREVIOUS SECONDS TOKEN LOG_OK LOG_EXPIRED:
# arms the watcher of an activation of RELEASE that went well: the record,
# then the watcher, which switches back to PREVIOUS unless the activation
# is confirmed within SECONDS. LOG_OK is the log line the confirmation
# appends; LOG_EXPIRED the watcher's (the time in it is replaced by its
# own); TOKEN the run's, whose lock the watcher may release. Reports
# `armed`; fails, saying why on stderr, if the record cannot be written.
landfall_arm() {
  case $4 in '' | *[!0-9]* | 0)
    printf 'landfall: %s is no number of seconds to wait for a confirmation\n' "$4" >&2
    return 1
    ;;
  esac
  d="$1/.landfall"
  rm -f "$d/confirm.new" "$d/confirm.done" "$d/confirm.expired" "$d/confirm.out" "$d/confirm.err"
  deadline=$(($(date +%s) + $4))
  if ! printf 'release=%s\nprevious=%s\nseconds=%s\ndeadline=%s\ntoken=%s\nlog=%s\n' \
    "$2" "$3" "$4" "$deadline" "$5" "$6" >"$d/confirm.new" ||
    ! mv -f "$d/confirm.new" "$d/confirm"; then
    rm -f "$d/confirm.new"
    printf 'landfall: cannot write %s/confirm\n' "$d" >&2
    return 1
  fi
  (
    cd "$d" || exit 1
    landfall_watch "$1" "$2" "$3" "$4" "$5" "$7"
  ) </dev/null >/dev/null 2>&1 &
  # What stops the watcher early, and what it knows its record by.
  if ! printf 'pid=%s\n' "$!" >>"$d/confirm"; then
    kill "$!" 2>/dev/null
    rm -f "$d/confirm"
    printf 'landfall: cannot write %s/confirm\n' "$d" >&2
    return 1
  fi
  printf 'armed\t%s\t%s\t%s\n' "$2" "$4" "$deadline"
}

# landfall_watch PATH RELEASE PREVIOUS SECONDS TOKEN LOG: the watcher, in
# PATH/.landfall. It sleeps SECONDS (stopped early by TERM, which a
# confirmation or a disarming sends once it won), then switches back from
# RELEASE to PREVIOUS if its rename wins, logging LOG.
landfall_watch() {
  watch_sleep=
  trap 'kill "$watch_sleep" 2>/dev/null; exit 0' TERM
  # Its own pid (`$$` is its parent's), which its record names.
  watch_pid=$(sh -c 'printf %s "$PPID"')
  sleep "$4" &
  watch_sleep=$!
  wait "$watch_sleep"
  # Once decided, it finishes, as every step does.
  trap '' TERM
  mv -f "$1/.landfall/confirm" "$1/.landfall/confirm.expired" 2>/dev/null || exit 0
  # A watcher that outlived its disarming never acts on a record armed
  # since: that one is given back to its own watcher.
  if [ "$(landfall_record "$1/.landfall/confirm.expired" pid)" != "$watch_pid" ]; then
    mv -f "$1/.landfall/confirm.expired" "$1/.landfall/confirm" 2>/dev/null
    exit 0
  fi
  # In a subshell of its own, so that a step that fails (exit 70) still
  # leaves the status for whoever reads the record.
  (landfall_switch_back "$1" "$2" "$3" "$(landfall_stamped "$6")") \
    >"$1/.landfall/confirm.out" 2>"$1/.landfall/confirm.err"
  watch_status=$?
  landfall_release_lock "$1" "$5"
  printf 'status=%s\n' "$watch_status" >>"$1/.landfall/confirm.expired"
}

# landfall_stamped LINE: a log line written ahead of time (a JSON object
# whose first member is its time), with its time made now.
landfall_stamped() {
  case $1 in
  '{"time":"'*'",'*) printf '{"time":"%s",%s' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${1#*'",'}" ;;
  *) printf '%s' "$1" ;;
  esac
}

# landfall_unwatch RECORD: stops the watcher a record names, once a
# rename took the record from it, if that process is still the watcher (it
# works in the record's directory), and its sleep with it.
landfall_unwatch() {
  unwatch_pid=$(landfall_record "$1" pid)
  case $unwatch_pid in '' | *[!0-9]*) return 0 ;; esac
  if [ -d "/proc/$unwatch_pid" ]; then
    unwatch_dir=$(cd -P "${1%/*}" 2>/dev/null && pwd -P) || return 0
    [ "$(readlink "/proc/$unwatch_pid/cwd" 2>/dev/null)" = "$unwatch_dir" ] || return 0
  fi
  kill "$unwatch_pid" 2>/dev/null || :
}

# landfall_watched RECORD: waits (at most 10 minutes) until the watcher
# that took RECORD (confirm.expired) has switched back and said how it
# went, or is gone.
landfall_watched() {
  watched_pid=$(landfall_record "$1" pid)
  n=0
  while [ -f "$1" ] && ! grep -q '^status=' "$1" 2>/dev/null && [ "$n" -lt 3000 ]; do
    case $watched_pid in
    '' | *[!0-9]*) ;;
    *) kill -0 "$watched_pid" 2>/dev/null || break ;;
    esac
    sleep 0.2
    n=$((n + 1))
  done
}

# landfall_disarm PATH: makes sure that no watcher armed by an earlier
# activation acts on PATH from now on: an armed one is disarmed (its
# record renamed to confirm.done, as a confirmation does) and stopped; one
# that already won is waited for. Sets `disarmed` to `armed`, `expired`
# or nothing, for what it found. (An activation then removes the records
# of what came before it: see landfall_activate.)
landfall_disarm() {
  disarmed=
  # Most paths never had a watcher: no `mv` is started for them.
  if [ -e "$1/.landfall/confirm" ] && mv -f "$1/.landfall/confirm" "$1/.landfall/confirm.done" 2>/dev/null; then
    disarmed=armed
    landfall_unwatch "$1/.landfall/confirm.done"
  elif [ -f "$1/.landfall/confirm.expired" ]; then
    disarmed=expired
    landfall_watched "$1/.landfall/confirm.expired"
  fi
}

# landfall_confirm lf_path lf_release lf_only_read: confirms the
# activation of lf_release: its record renamed confirm -> confirm.done
# (unless the watcher renamed it first), the watcher stopped, and the
# activation logged; reports `confirm done`. If the watcher's time ran out
# first, it waits for the watcher's switch back, then reports `confirm
# expired` with the seconds waited, followed by what the switch back
# reported (its hooks' output on stderr). With lf_only_read=1 it renames
# nothing, and reports `confirm armed` with the deadline for a record
# still armed. `confirm none`: no record of lf_release.
landfall_confirm() {
  d="$lf_path/.landfall"
  if [ "$(landfall_record "$d/confirm" release)" = "$lf_release" ]; then
    if [ "$lf_only_read" = 1 ]; then
      printf 'confirm\tarmed\t%s\t%s\n' "$lf_release" "$(landfall_record "$d/confirm" deadline)"
      return 0
    fi
    if mv -f "$d/confirm" "$d/confirm.done" 2>/dev/null; then
      landfall_unwatch "$d/confirm.done"
      landfall_log "$lf_path" "$(landfall_record "$d/confirm.done" log)"
      printf 'confirm\tdone\t%s\n' "$lf_release"
      return 0
    fi
  fi
  if [ "$(landfall_record "$d/confirm.expired" release)" = "$lf_release" ]; then
    landfall_watched "$d/confirm.expired"
    printf 'confirm\texpired\t%s\t%s\n' "$lf_release" "$(landfall_record "$d/confirm.expired" seconds)"
    cat "$d/confirm.out" 2>/dev/null
    tail -n 40 "$d/confirm.err" >&2 2>/dev/null
    return 0
  fi
  landfall_current "$lf_path"
  if [ "$(landfall_record "$d/confirm.done" release)" = "$lf_release" ] && [ "${c##*/}" = "$lf_release" ]; then
    # Confirmed already: by an attempt whose answer was lost on the way.
    printf 'confirm\tdone\t%s\n' "$lf_release"
    return 0
  fi
  printf 'confirm\tnone\t%s\n' "$lf_release"
}
