# The overlapping hand-over of a service with `overlap`: it runs in one of
# two slots, blue and green, each an instance of its own (systemd's
# NAME@SLOT.service sharing the socket unit's sockets; supervisord's
# program NAME@SLOT, and under --local a process of its own, each binding
# the addresses of `listen` itself with SO_REUSEPORT). Each
# slot is a link, .landfall/slots/SLOT, to the release its instance runs;
# .landfall/service.slot names the slot that serves. A new release starts
# in the other slot, beside the one that serves, and is proven ready on
# itself (sd_notify's READY=1, a listening socket of its own, then
# `ready`); only then is the one that served told to stop (TERM: it stops
# accepting and finishes what it has, within stop_timeout), and its slot
# pointed at the new release too, so that whatever starts it later runs
# the current release. A release that never becomes ready is stopped, and
# the one that served never stopped.

# landfall_slot PATH: the slot that serves, or nothing before the first
# hand-over.
landfall_slot() {
  case $(cat "$1/.landfall/service.slot" 2>/dev/null) in
  blue) printf blue ;;
  green) printf green ;;
  esac
}

# landfall_slot_other SLOT: the other slot (blue, when SLOT is nothing).
landfall_slot_other() {
  if [ "$1" = blue ]; then printf green; else printf blue; fi
}

# landfall_slot_point PATH SLOT DIR: points the link of SLOT at the
# release in DIR, atomically.
landfall_slot_point() {
  mkdir -p "$1/.landfall/slots" &&
    ln -sfn "../../releases/${3##*/}" "$1/.landfall/slots/.$2.new" &&
    mv -fT "$1/.landfall/slots/.$2.new" "$1/.landfall/slots/$2"
}

# landfall_slot_release PATH SLOT: the id of the release SLOT points at.
landfall_slot_release() {
  slot_link=$(readlink "$1/.landfall/slots/$2" 2>/dev/null) || return 1
  printf '%s' "${slot_link##*/}"
}

# landfall_slot_unit SLOT: the systemd unit of the recorded service's
# instance in SLOT.
landfall_slot_unit() {
  printf '%s@%s.service' "$service_name" "$1"
}

# landfall_slot_running PATH SLOT: whether the instance of SLOT runs, or
# is starting or stopping.
landfall_slot_running() {
  [ -n "$2" ] || return 1
  if [ -n "${LANDFALL_LOCAL:-}" ]; then
    landfall_process_pid "$1" "$2" >/dev/null
    return
  fi
  if [ "$service_manager" = supervisor ]; then
    case $(landfall_supervisorctl status "$service_name@$2" 2>&1) in
    *" RUNNING "* | *" STARTING"* | *" BACKOFF"* | *" STOPPING"*) return 0 ;;
    esac
    return 1
  fi
  case $(landfall_unit_show "$service_manager" "$(landfall_slot_unit "$2")" ActiveState) in
  ActiveState=active | ActiveState=activating | ActiveState=reloading | ActiveState=deactivating) return 0 ;;
  esac
  return 1
}

# landfall_slot_stop PATH SLOT: stops the instance of SLOT, which finishes
# what it has within stop_timeout.
landfall_slot_stop() {
  if [ -n "${LANDFALL_LOCAL:-}" ]; then
    landfall_process_stop "$1" "$2"
  elif [ "$service_manager" = supervisor ]; then
    landfall_supervisorctl stop "$service_name@$2" >&2
  else
    landfall_systemctl "$service_manager" stop "$(landfall_slot_unit "$2")" >&2
  fi
}

# landfall_handover_start PATH DIR REUSE: starts the service of the
# release in DIR in the slot that does not serve, beside the one that
# does (systemd's start of a `notify` service returns once it said
# READY=1, or fails, handover_unready saying it was not ready in time;
# where each instance binds its own sockets, landfall_handover_listening
# is the wait). With REUSE=1 (a switch back), an instance that serves and
# runs DIR already is kept, and the other one stopped: nothing starts.
# Sets handover_to, the slot the release runs in, and handover_from, the
# slot to drain once it is ready (see landfall_handover_finish), if one
# serves.
landfall_handover_start() {
  p=$1 rel=$2 name=$service_name m=$service_manager
  handover_unready=''
  printf 'hook\tservice\n'
  live=$(landfall_slot "$p")
  next=$(landfall_slot_other "$live")
  handover_from='' handover_to=$next
  if [ "$3" = 1 ] && landfall_slot_running "$p" "$live" &&
    [ "$(landfall_slot_release "$p" "$live")" = "${rel##*/}" ]; then
    # The instance that served never stopped: it serves on alone.
    handover_to=$live
    if landfall_slot_running "$p" "$next"; then
      landfall_slot_stop "$p" "$next"
    fi
    landfall_slot_point "$p" "$next" "$rel" || return 1
    printf 'kept\t%s\t%s\n' "$name" "$live"
    return 0
  fi
  # An instance left in that slot by a hand-over that was stopped midway
  # makes way first.
  if landfall_slot_running "$p" "$next"; then
    landfall_slot_stop "$p" "$next" || return 1
  fi
  landfall_slot_point "$p" "$next" "$rel" || {
    printf 'landfall: cannot point %s at %s\n' "$p/.landfall/slots/$next" "${rel##*/}" >&2
    return 1
  }
  if landfall_slot_running "$p" "$live"; then
    handover_from=$live
  fi
  if [ -n "${LANDFALL_LOCAL:-}" ]; then
    landfall_process_start "$p" "$rel" "$next" >&2 || return 1
    printf 'started\t%s\t%s\n' "$name" "$next"
    return 0
  fi
  if [ "$m" = supervisor ]; then
    # Its program, started at boot from now on; supervisord adds (and so
    # starts) one that changed.
    definition_slot=$next definition_autostart=true
    landfall_install "$p" "$rel" unit 644
    case $? in
    0)
      if landfall_may_install "$m"; then
        landfall_supervisorctl reread >&2 &&
          landfall_supervisorctl update "$name@$next" >&2 || return 1
      fi
      ;;
    2) return 1 ;;
    esac
    landfall_supervisor_running "$name@$next" || return 1
    printf 'started\t%s\t%s\n' "$name" "$next"
    return 0
  fi
  changed=''
  landfall_install "$p" "$rel" unit 644
  case $? in 0) changed=1 ;; 2) return 1 ;; esac
  if [ -f "$rel/.landfall-service/socket" ]; then
    landfall_install "$p" "$rel" socket 644
    case $? in 0) changed=1 ;; 2) return 1 ;; esac
  fi
  if [ -n "$changed" ] && landfall_may_install "$m"; then
    landfall_systemctl "$m" daemon-reload >&2 || return 1
  fi
  if [ -f "$rel/.landfall-service/socket" ] && ! landfall_unit_show "$m" "$name.socket" ActiveState | grep -qx 'ActiveState=active'; then
    if landfall_may_install "$m"; then
      landfall_systemctl "$m" enable --quiet --now "$name.socket" >&2 || return 1
    else
      landfall_systemctl "$m" start "$name.socket" >&2 || return 1
    fi
  fi
  # With `notify`, systemd's start returns once the instance said it is
  # ready, or fails: when ready_timeout passed first, the release was not
  # ready (handover_unready).
  if ! landfall_systemctl "$m" start "$(landfall_slot_unit "$next")" >&2; then
    case $(landfall_unit_show "$m" "$(landfall_slot_unit "$next")" Result) in
    Result=timeout) handover_unready=1 ;;
    esac
    return 1
  fi
  printf 'started\t%s\t%s\n' "$name" "$next"
}

# landfall_handover_listening PATH SLOT: for a service that binds its own
# sockets (under supervisord and --local), waits until the process of SLOT holds a
# listening socket on each address of `listen`, for at most ready_timeout:
# then it accepts connections of its own. Fails at once if it ends.
landfall_handover_listening() {
  [ -n "${LANDFALL_LOCAL:-}" ] || [ "$service_manager" = supervisor ] || return 0
  [ -n "${service_listen:-}" ] || return 0
  deadline=$(($(date +%s) + ready_timeout))
  printf 'hook\tready\n'
  pid=''
  while :; do
    # The pid is asked for again only when its process is gone (a
    # restart): asking supervisord is a process of Python's each time.
    if [ -z "$pid" ] || landfall_process_gone "$pid"; then
      if ! pid=$(landfall_slot_pid "$1" "$2"); then
        printf 'landfall: the instance in slot %s ended before it listened on %s\n' "$2" "$service_listen" >&2
        return 1
      fi
    fi
    landfall_listens "$pid" "$service_listen" && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      printf 'landfall: the instance in slot %s (pid %s) did not listen on %s within %ss\n' \
        "$2" "$pid" "$service_listen" "$ready_timeout" >&2
      return 1
    fi
    sleep 0.1
  done
}

# landfall_slot_pid PATH SLOT: the pid of the process of SLOT, if it runs.
landfall_slot_pid() {
  if [ -n "${LANDFALL_LOCAL:-}" ]; then
    landfall_process_pid "$1" "$2"
    return
  fi
  slot_pid=$(landfall_supervisorctl pid "$service_name@$2" 2>/dev/null)
  case $slot_pid in '' | 0 | *[!0-9]*) return 1 ;; esac
  printf '%s' "$slot_pid"
}

# landfall_listens PID ADDRESSES: whether process PID holds a listening
# TCP socket of its own on the port of each of ADDRESSES (`IP:PORT`,
# separated by spaces): one of the sockets its descriptors name is one
# that listens there. The listening sockets of a port are asked of the
# kernel with `ss` where it is installed, which filters them there;
# otherwise read from the network namespace's /proc/PID/net/tcp and tcp6,
# which list every socket (a busy host's tens of thousands).
landfall_listens() {
  # shellcheck disable=SC2012 # Only the links' targets are read.
  inodes=$(ls -l "/proc/$1/fd" 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\].*/\1/p' | tr '\n' ' ')
  [ -n "$inodes" ] || return 1
  for address in $2; do
    if command -v ss >/dev/null 2>&1; then
      ss -Hltne "sport = :${address##*:}" 2>/dev/null |
        awk -v inodes=" $inodes" '{ for (i = 1; i <= NF; i++) if ($i ~ /^ino:/ && index(inodes, " " substr($i, 5) " ")) found = 1 }
          END { exit !found }' || return 1
      continue
    fi
    port=$(printf '%04X' "${address##*:}")
    # A line: sl local_address rem_address st ... inode (the 10th field);
    # state 0A is LISTEN.
    cat "/proc/$1/net/tcp" "/proc/$1/net/tcp6" 2>/dev/null |
      awk -v port="$port" -v inodes=" $inodes" '
        $4 == "0A" && substr($2, length($2) - 3) == port && index(inodes, " " $10 " ") { found = 1 }
        END { exit !found }' || return 1
  done
}

# landfall_handover_finish PATH DIR: once the release in DIR is ready in
# its slot, records that slot as the one that serves, tells the one that
# served (landfall_handover_start's handover_from) to stop and waits for
# it, within stop_timeout, then points its slot at DIR too. Under systemd,
# the slot that serves is the one enabled at boot.
landfall_handover_finish() {
  p=$1 m=$service_manager
  printf '%s\n' "$handover_to" >"$p/.landfall/service.slot.new" &&
    mv -f "$p/.landfall/service.slot.new" "$p/.landfall/service.slot" || return 1
  other=$(landfall_slot_other "$handover_to")
  if [ -n "$handover_from" ]; then
    printf 'hook\tdrain\n'
    landfall_slot_stop "$p" "$handover_from" || return 1
    printf 'drained\t%s\t%s\n' "$service_name" "$handover_from"
  fi
  if [ -n "${handover_plain:-}" ]; then
    printf 'hook\tdrain\n'
    landfall_handover_retire "$p" || return 1
    printf 'drained\t%s\t\n' "$service_name"
  fi
  landfall_slot_point "$p" "$other" "$2" || return 1
  [ -z "${LANDFALL_LOCAL:-}" ] || return 0
  if [ "$m" = supervisor ]; then
    # The program of the slot that no longer serves no longer starts at
    # boot: root writes it so (a deploy user's programs both start).
    landfall_may_install "$m" && [ -n "$handover_from" ] || return 0
    definition_slot=$handover_from definition_autostart=false
    landfall_install "$p" "$2" unit 644
    case $? in
    0) landfall_supervisorctl reread >&2 && landfall_supervisorctl update "$service_name@$handover_from" >&2 ;;
    1) return 0 ;;
    *) return 1 ;;
    esac
    return
  fi
  # The sudo rules allow a deploy user that is not root these two.
  landfall_systemctl "$m" enable --quiet "$(landfall_slot_unit "$handover_to")" >&2 &&
    landfall_systemctl "$m" disable --quiet "$(landfall_slot_unit "$other")" >&2
}

# landfall_handover_retire PATH: stops the service as it ran before its
# hand-over was turned on (one instance, without slots), which finishes
# what it has, and removes its definition; the sockets systemd holds stay.
# Fails if it cannot be stopped: the caller switches back then.
landfall_handover_retire() {
  p=$1 m=$service_manager name=$service_name
  if [ -n "${LANDFALL_LOCAL:-}" ]; then
    landfall_process_stop "$p"
    return 0
  fi
  case $m in
  supervisor)
    landfall_supervisorctl stop "$name" >&2 || return 1
    if landfall_may_install "$m"; then
      rm -f "$(landfall_supervisor_dir)/$name.conf"
      landfall_supervisorctl reread >&2 && landfall_supervisorctl update "$name" >&2
    fi
    ;;
  *)
    landfall_systemctl "$m" disable --quiet --now "$name.service" >&2 || return 1
    if landfall_may_install "$m"; then
      rm -f "$(landfall_unit_dir "$m")/$name.service"
      landfall_systemctl "$m" daemon-reload >&2
    fi
    ;;
  esac
  if ! landfall_may_install "$m"; then
    printf 'landfall: service %s is stopped; only root removes its definition\n' "$name" >&2
  fi
  return 0
}

# landfall_handover_undo PATH DIR: switching back to the release in DIR,
# whose service (as it ran before its hand-over was turned on) was never
# stopped: stops the new instance and removes what its hand-over
# installed, but the sockets, whose definition is DIR's again.
landfall_handover_undo() {
  p=$1 m=$service_manager name=$service_name
  printf 'hook\tservice\n'
  if [ -z "${LANDFALL_LOCAL:-}" ] && [ "$m" != supervisor ] && landfall_may_install "$m"; then
    # The sockets trigger the one instance again before the new one
    # stops: a connection meanwhile would start it anew.
    [ ! -f "$2/.landfall-service/socket" ] || landfall_install "$p" "$2" socket 644
    [ ! -f "$2/.landfall-service/unit" ] || landfall_install "$p" "$2" unit 644
    landfall_systemctl "$m" daemon-reload >&2
  fi
  for slot in blue green; do
    if [ -n "${LANDFALL_LOCAL:-}" ]; then
      landfall_process_stop "$p" "$slot"
    elif [ "$m" = supervisor ]; then
      landfall_supervisorctl stop "$name@$slot" >&2
      if landfall_may_install "$m"; then
        rm -f "$(landfall_supervisor_dir)/$name@$slot.conf"
      fi
    else
      landfall_systemctl "$m" stop "$name@$slot.service" >&2
    fi
  done
  rm -rf "$p/.landfall/slots" "$p/.landfall/service.slot" "$p/.landfall/service.unit@blue" \
    "$p/.landfall/service.unit@green"
  if [ -z "${LANDFALL_LOCAL:-}" ] && landfall_may_install "$m"; then
    if [ "$m" = supervisor ]; then
      landfall_supervisorctl reread >&2 && landfall_supervisorctl update "$name@blue" "$name@green" >&2
    else
      rm -f "$(landfall_unit_dir "$m")/$name@.service"
      landfall_systemctl "$m" daemon-reload >&2
    fi
  fi
  printf 'kept\t%s\t\n' "$name"
}

# landfall_handover_remove PATH MANAGER NAME: stops both instances of the
# service NAME and removes its definitions and its slots.
landfall_handover_remove() {
  p=$1 m=$2 name=$3
  for slot in blue green; do
    if [ -n "${LANDFALL_LOCAL:-}" ]; then
      landfall_process_stop "$p" "$slot"
    elif [ "$m" = supervisor ]; then
      landfall_supervisorctl stop "$name@$slot" >&2
    else
      landfall_systemctl "$m" disable --quiet --now "$name@$slot.service" >&2
    fi
  done
  if [ "$m" = supervisor ] && [ -z "${LANDFALL_LOCAL:-}" ]; then
    d=$(landfall_supervisor_dir)
    if landfall_may_install "$m"; then
      rm -f "$d/$name@blue.conf" "$d/$name@green.conf"
      landfall_supervisorctl reread >&2 && landfall_supervisorctl update "$name@blue" "$name@green" >&2
    else
      printf 'landfall: service %s is stopped; only root removes %s and %s\n' "$name" "$d/$name@blue.conf" "$d/$name@green.conf" >&2
    fi
  elif [ -z "${LANDFALL_LOCAL:-}" ]; then
    landfall_units_remove "$m" "$name" "$name@.service"
  fi
  rm -rf "$p/.landfall/slots" "$p/.landfall/service.slot" "$p/.landfall/service.unit" \
    "$p/.landfall/service.socket" "$p/.landfall/service.unit@blue" "$p/.landfall/service.unit@green"
  printf 'removed-service\t%s\n' "$name"
}
