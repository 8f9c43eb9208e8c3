# supervisord.

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
