# The service's own log, as a person reads it (`cargo deploy logs`).

# landfall_service_logs lf_path lf_lines lf_follow lf_all_releases: prints
# the last lf_lines lines of the log of the service the current release of
# lf_path runs, each after its time: with lf_all_releases=1 every
# release's, else those since the current release's service started (see
# landfall_log_lines); with lf_follow=1 it goes on printing what the
# service writes next, of any release. Exits 13 if it runs none. A
# follower gets the default dispositions back, so that the hangup of a
# connection that ends stops it.
landfall_service_logs() {
  if ! landfall_recorded "$lf_path/current" 2>/dev/null || [ -z "$service_manager" ]; then
    printf 'the current release of %s runs no service\n' "$lf_path" >&2
    exit 13
  fi
  trap - HUP PIPE
  n=$lf_lines follow=$lf_follow all=$lf_all_releases
  release=$(cd -P -- "$lf_path/current" && pwd -P) || return 1
  release=${release##*/}
  if [ -n "${LANDFALL_LOCAL:-}" ] || [ "$service_manager" = supervisor ]; then
    # The launcher wrote the time before each line.
    if [ -n "${LANDFALL_LOCAL:-}" ]; then
      log="$lf_path/.landfall/service.log"
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
  # The instances of a service with `overlap` (both slots, see
  # handover.sh) write one log, in the order of its lines.
  unit="$service_name.service"
  [ "$service_overlap" != 1 ] || unit="$service_name@*.service"
  if [ "$service_manager" = systemd-user ]; then
    set -- journalctl --no-pager --utc -o short-iso-precise --user-unit "$unit"
  else
    set -- journalctl --no-pager --utc -o short-iso-precise -u "$unit"
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
