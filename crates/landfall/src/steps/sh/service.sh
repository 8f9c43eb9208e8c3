# The service a release runs, whatever its manager: checked before the
# switch, its definition installed, started or reloaded, stopped, its
# state, the manager's verdict, and its log.

# landfall_service_of DIR: prints the manager and name of the service the
# release in DIR recorded (`MANAGER NAME`, see landfall_service_id), or
# nothing.
landfall_service_of() {
  (landfall_recorded "$1" 2>/dev/null && [ -n "$service_manager" ] &&
    printf '%s %s' "$service_manager" "$(landfall_service_id)") 2>/dev/null
}

# landfall_service_id: the name of the recorded service, as it is
# installed: NAME, or NAME@ for the instances of one with `overlap` (see
# handover.sh), which are started and removed otherwise.
landfall_service_id() {
  if [ "$service_overlap" = 1 ]; then
    printf '%s@' "$service_name"
  else
    printf '%s' "$service_name"
  fi
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
  systemd)
    if [ "$service_overlap" = 1 ]; then
      set -- systemctl start "$service_name@blue.service"
    else
      set -- systemctl restart "$service_name.service"
    fi
    ;;
  *)
    if [ "$service_overlap" = 1 ]; then
      set -- supervisorctl -c "$(landfall_supervisor_conf)" start "$service_name@blue"
    else
      set -- supervisorctl -c "$(landfall_supervisor_conf)" restart "$service_name"
    fi
    ;;
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
    s|^ExecStart=\(/.*\)/\.landfall/slots/%i/\.landfall-service/run$|\1|p
    s|^command=\(/.*\)/current/\.landfall-service/run$|\1|p
    s|^command=\(/.*\)/\.landfall/slots/[a-z]*/\.landfall-service/run$|\1|p' "$sdst" | head -n 1)
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
# it: the release's own (for supervisord's program of a service with
# `overlap`, the one of slot definition_slot, which starts at boot if
# definition_autostart is true), naming the account that deploys if the
# configuration named none (a system service never runs as root unless
# root was named: landfall_service_check refuses that case).
landfall_definition() {
  if [ "$service_manager.$service_overlap.$2" = supervisor.1.unit ]; then
    # A program per slot (see landfall_definition_path).
    sed "s/@SLOT@/${definition_slot:-blue}/g; s/@AUTOSTART@/${definition_autostart:-true}/g" \
      "$1/.landfall-service/$2" || return 1
  else
    cat "$1/.landfall-service/$2" || return 1
  fi
  [ "$2" = unit ] && [ -z "$service_user" ] || return 0
  case $service_manager in
  systemd) printf 'User=%s\n' "$(id -un)" ;;
  supervisor) printf 'user=%s\n' "$(id -un)" ;;
  esac
}

# landfall_definition_path FILE: where the manager of the recorded service
# reads its definition FILE (unit, socket): for supervisord's programs of
# a service with `overlap`, the one of slot definition_slot.
landfall_definition_path() {
  case $service_manager in
  supervisor)
    if [ "$service_overlap" = 1 ]; then
      printf '%s/%s@%s.conf' "$(landfall_supervisor_dir)" "$service_name" "${definition_slot:-blue}"
    else
      printf '%s/%s.conf' "$(landfall_supervisor_dir)" "$service_name"
    fi
    ;;
  *)
    if [ "$1" = socket ]; then
      printf '%s/%s.socket' "$(landfall_unit_dir "$service_manager")" "$service_name"
    else
      printf '%s/%s.service' "$(landfall_unit_dir "$service_manager")" "$(landfall_service_id)"
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
  ok=0 dir=$1
  # supervisord's programs of a service with `overlap` are one per slot,
  # both started at boot here: which one serves is the deploy's to say,
  # and only root writes a definition.
  for f in unit socket unit@blue unit@green; do
    definition_slot=${f#*@} definition_autostart=true file=${f%@*} label=$service_name
    case $service_manager.$service_overlap.$f in
    supervisor.1.unit | supervisor.1.socket) continue ;;
    supervisor.1.unit@*) label="$service_name@$definition_slot" ;;
    *@*) continue ;;
    esac
    [ -f "$dir/.landfall-service/$file" ] || continue
    want="${dir%/releases/*}/.landfall/$label.$file"
    dst=$(landfall_definition_path "$file")
    landfall_definition "$dir" "$file" >"$want.$$" && mv -f "$want.$$" "$want" || {
      printf 'cannot write %s\n' "$want"
      return 1
    }
    cmp -s "$want" "$dst" 2>/dev/null && continue
    ok=1
    case $service_manager.$service_overlap.$file in
    systemd.*.socket) then="systemctl daemon-reload && systemctl enable --now $service_name.socket" ;;
    systemd.1.*) then="systemctl daemon-reload" ;;
    systemd.*) then="systemctl daemon-reload && systemctl enable $service_name.service" ;;
    *) then="supervisorctl update $label" ;;
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
  [ "$service_manager.$service_overlap" != supervisor.1 ] || record="$record@${definition_slot:-blue}"
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

# landfall_service_switch PATH DIR OLD OLDDIR BACK: after `current`
# switched to the release in DIR (whose activation is read): removes the
# service OLD (`MANAGER NAME`, of the release in OLDDIR) if DIR runs
# another or none, then starts DIR's service. One with `overlap` starts
# beside the one that serves (see landfall_handover_start; BACK=1 when
# switching back), and handover_pending says that the one that served is
# yet to be drained (landfall_handover_finish); handover_plain, that it
# ran without slots, as before its hand-over was turned on.
landfall_service_switch() {
  if [ "$5" = 1 ] && [ -n "${handover_plain:-}" ] && [ -n "${handover_pending:-}" ] &&
    [ "$3" = "$service_manager $service_name@" ] && [ "$service_overlap" != 1 ]; then
    # Back to the service as it ran before its hand-over was turned on,
    # which was never stopped: only the new instance goes.
    handover_pending='' handover_plain=''
    landfall_handover_undo "$1" "$2"
    return
  fi
  handover_pending='' handover_plain=''
  if [ -n "$3" ] && [ "$3" != "$service_manager $(landfall_service_id)" ]; then
    if [ "$service_overlap" = 1 ] && [ "$3" = "$service_manager $service_name" ]; then
      # The same service, its hand-over turned on: the new instance starts
      # beside the one that serves, as any other, which then drains.
      handover_plain=1
    else
      # shellcheck disable=SC2086 # OLD is two words.
      landfall_service_remove "$1" $3 || return 1
    fi
  fi
  [ -n "$service_manager" ] || return 0
  if [ "$service_overlap" = 1 ]; then
    handover_pending=1
    landfall_handover_start "$1" "$2" "$5" || return 1
    [ "$handover_to" != "$(landfall_slot "$1")" ] || handover_pending=''
    return 0
  fi
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

# landfall_service_remove PATH MANAGER NAME: stops the service NAME and
# removes its definition (both instances of NAME@, see
# landfall_service_id).
landfall_service_remove() {
  p=$1 m=$2 name=$3
  case $name in *@)
    landfall_handover_remove "$p" "$m" "${name%@}"
    return
    ;;
  esac
  if [ -n "${LANDFALL_LOCAL:-}" ]; then
    landfall_process_stop "$p"
    printf 'removed-service\t%s\n' "$name"
    return 0
  fi
  case $m in
  systemd | systemd-user)
    landfall_systemctl "$m" disable --quiet --now "$name.service" >&2
    landfall_units_remove "$m" "$name" "$name.service"
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

# landfall_service_state INDEX PATH: reports the state of the service the
# current release of PATH (numbered INDEX) runs: `service`, its manager,
# name, state, pid and since when. A service with `overlap` is reported
# as its instance that serves, `NAME@SLOT`, then as the other instance if
# that one runs too (a hand-over under way, or stopped midway).
landfall_service_state() {
  (
    index=$1 p=$2
    landfall_recorded "$p/current" 2>/dev/null && [ -n "$service_manager" ] || exit 0
    if [ "$service_overlap" = 1 ]; then
      live=$(landfall_slot "$p")
      live=${live:-blue}
      landfall_instance_state "$index" "$p" "$live"
      other=$(landfall_slot_other "$live")
      if landfall_slot_running "$p" "$other"; then
        landfall_instance_state "$index" "$p" "$other"
      fi
    else
      landfall_instance_state "$index" "$p" ''
    fi
  )
}

# landfall_instance_state INDEX PATH SLOT: the `service` line of the
# recorded service (its activation read), or of its instance in SLOT.
landfall_instance_state() {
  index=$1 p=$2 slot=$3
  m=$service_manager name=$service_name state=unknown pid='' since=''
  [ -z "$slot" ] || name="$service_name@$slot"
  if [ -n "${LANDFALL_LOCAL:-}" ]; then
    m=process
    if pid=$(landfall_process_pid "$p" "$slot"); then
      state=running
      since=$(date -r "$(landfall_process_pidfile "$p" "$slot")" '+%Y-%m-%d %H:%M:%S %Z' 2>/dev/null)
    else
      state=stopped pid=
    fi
  else
    case $m in
    systemd | systemd-user)
      out=$(landfall_unit_show "$m" "$(landfall_service_unit "$slot")" ActiveState,SubState,MainPID,ActiveEnterTimestamp)
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
      elif [ -n "$slot" ] && [ "$state" = STOPPING ]; then
        # An instance that drains: supervisord says its pid on request.
        pid=$(landfall_slot_pid "$p" "$slot") || pid=
      fi
      ;;
    esac
  fi
  printf 'service\t%s\t%s\t%s\t%s\t%s\t%s\n' "$index" "$m" "$name" "${state:-unknown}" "$pid" "$since"
}

# landfall_service_slot PATH: the slot of the instance a step is about,
# for a service with `overlap`: the one a hand-over started, else the one
# that serves. Nothing for another service.
landfall_service_slot() {
  [ "$service_overlap" = 1 ] || return 0
  if [ -n "${handover_to:-}" ]; then
    printf '%s' "$handover_to"
  else
    slot_now=$(landfall_slot "$1")
    printf '%s' "${slot_now:-blue}"
  fi
}

# landfall_service_unit SLOT: the systemd unit of the recorded service, or
# of its instance in SLOT.
landfall_service_unit() {
  if [ -n "$1" ]; then
    landfall_slot_unit "$1"
  else
    printf '%s.service' "$service_name"
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
  # DIR is PATH/releases/RELEASE.
  verdict_slot=$(landfall_service_slot "${1%/releases/*}")
  if [ -n "${LANDFALL_LOCAL:-}" ]; then
    verdict_manager=process
    if verdict_pid=$(landfall_process_pid "${1%/releases/*}" "$verdict_slot"); then
      verdict_state=running verdict="running (pid $verdict_pid)"
      return 0
    fi
    verdict_pid=$(cat "$(landfall_process_pidfile "${1%/releases/*}" "$verdict_slot")" 2>/dev/null)
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
    verdict_show=$(landfall_unit_show "$service_manager" "$(landfall_service_unit "$verdict_slot")" \
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
    verdict_program=$service_name
    [ -z "$verdict_slot" ] || verdict_program="$service_name@$verdict_slot"
    verdict_show=$(landfall_supervisorctl status "$verdict_program" 2>&1 | head -n 1)
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
    cause_unit=$(landfall_service_unit "$(landfall_service_slot "${1%/releases/*}")")
    if [ "$service_manager" = systemd-user ]; then
      set -- --user-unit "$cause_unit"
    else
      set -- -u "$cause_unit"
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
