# Under `--local`, no service manager: the service is a background
# process of its own.

# landfall_process_start PATH DIR [SLOT]: under `--local`, where no
# service manager is used, runs the service of the release in DIR as a
# background process of its own session, its output appended to
# .landfall/service.log and its pid in .landfall/service.pid, after
# stopping the one running. With SLOT (a service with `overlap`), it is
# the instance of that slot, which starts the release the slot points at,
# its pid in .landfall/service-SLOT.pid; the other slot's runs on.
landfall_process_start() {
  landfall_process_stop "$1" "${3:-}"
  run="$1/current/.landfall-service/run" pidfile=$(landfall_process_pidfile "$1" "${3:-}")
  [ -z "${3:-}" ] || run="$1/.landfall/slots/$3/.landfall-service/run"
  (
    set -a
    # shellcheck source=/dev/null # The release's own, written by landfall.
    . "$2/.landfall-service/env" || exit 1
    set +a
    LANDFALL_PATH=$1 LANDFALL_SLOT=${3:-}
    export LANDFALL_PATH
    if [ -n "$LANDFALL_SLOT" ]; then export LANDFALL_SLOT; else unset LANDFALL_SLOT; fi
    # No journal keeps its output: the launcher writes the time of each line.
    unset LANDFALL_LOG
    trap - HUP PIPE
    if command -v setsid >/dev/null 2>&1; then
      exec setsid "$run"
    fi
    exec "$run"
  ) </dev/null >>"$1/.landfall/service.log" 2>&1 &
  printf '%s\n' "$!" >"$pidfile" || return 1
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

# landfall_process_pidfile PATH [SLOT]: where the pid of the service (or
# of its instance in SLOT) is kept.
landfall_process_pidfile() {
  if [ -n "${2:-}" ]; then
    printf '%s/.landfall/service-%s.pid' "$1" "$2"
  else
    printf '%s/.landfall/service.pid' "$1"
  fi
}

# landfall_process_pid PATH [SLOT]: the pid of the service (or of its
# instance in SLOT) landfall_process_start started, if it still runs in a
# release of PATH.
landfall_process_pid() {
  pid=$(cat "$(landfall_process_pidfile "$1" "${2:-}")" 2>/dev/null) || return 1
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

# landfall_process_stop PATH [SLOT]: stops the service (or its instance
# in SLOT) landfall_process_start started: TERM, then KILL once
# stop_timeout has passed.
landfall_process_stop() {
  if pid=$(landfall_process_pid "$1" "${2:-}"); then
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
  rm -f "$(landfall_process_pidfile "$1" "${2:-}")"
}
