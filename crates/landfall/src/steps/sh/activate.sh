# Activating a release: what it recorded, the switch of `current`, the
# hooks with their time limits, and switching back.

# landfall_recorded DIR: reads the activation a release recorded
# (.landfall-activation in DIR, written by landfall with every value
# quoted) into hook_build, hook_pre_activate, hook_activate, hook_health,
# health_timeout and hook_timeout, and for a service service_manager,
# service_name, service_user (the account its configuration named, if
# any), service_ready, ready_timeout, stop_timeout, service_reload,
# service_bin, service_overlap and service_listen. Fails, with every hook empty, for a release that
# recorded none (one made before releases carried their activation).
landfall_recorded() {
  hook_build='' hook_pre_activate='' hook_activate='' hook_health=''
  hook_once='' health_timeout=1 hook_timeout=1
  service_manager='' service_name='' service_user='' service_ready=''
  ready_timeout=1 stop_timeout=1 service_reload=0 service_bin=''
  service_overlap=0 service_listen=''
  [ -f "$1/.landfall-activation" ] && [ ! -L "$1/.landfall-activation" ] || return 1
  # shellcheck source=/dev/null # The release's own, written by landfall.
  . "$1/.landfall-activation" || landfall_fail "cannot read $1/.landfall-activation"
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

# landfall_activate lf_path lf_release lf_previous lf_revert lf_log_ok
# lf_log_back lf_confirm lf_token lf_log_expired: runs the activation
# lf_release recorded: the check of its service manager, pre_activate, the
# switch of `current`, the service (its definition installed, restarted or
# reloaded, then `ready` polled), activate, and health polled for its
# timeout; then logs lf_log_ok. When any of these fail after the switch
# and lf_revert=1, it switches back to lf_previous at once and runs what
# lf_previous recorded, logging lf_log_back (see landfall_switch_back). A
# release that recorded no activation is switched to with no hook run, and
# reported `unrecorded`. With lf_confirm (seconds) and lf_revert=1, an
# activation that went well arms a watcher instead of logging (see
# confirm.sh): unless it is confirmed within lf_confirm seconds, the host
# switches back by itself, logging lf_log_expired and releasing the lock
# of the run whose token is lf_token; one that cannot be armed fails
# (`confirm`) and switches back. A watcher armed by an earlier activation
# is disarmed before the switch.
landfall_activate() {
  p=$lf_path id=$lf_release prev=$lf_previous revert=$lf_revert
  log_ok=$lf_log_ok log_back=$lf_log_back
  confirm=$lf_confirm token=$lf_token log_expired=$lf_log_expired
  [ "$revert" = 1 ] || confirm=
  rel="$p/releases/$id"
  landfall_complete "$p" "$id"
  landfall_steps "$p"
  # A watcher switching the path back by itself finishes first, so that
  # what is current is settled.
  [ ! -f "$p/.landfall/confirm.expired" ] || landfall_watched "$p/.landfall/confirm.expired"
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
  # From the switch on, this activation replaces what an earlier one armed
  # (one that stops before it leaves that watcher be); what the watcher
  # did is no answer for this one.
  landfall_disarm "$p"
  if [ -n "$disarmed" ]; then
    rm -f "$p/.landfall/confirm.done" "$p/.landfall/confirm.expired" \
      "$p/.landfall/confirm.out" "$p/.landfall/confirm.err"
    if [ "$disarmed" = expired ]; then
      # It switched back meanwhile.
      landfall_current "$p"
      old=
      [ -z "$c" ] || old=$(landfall_service_of "$p/releases/${c##*/}")
    fi
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
  if ! landfall_service_switch "$p" "$rel" "$old" "$was" 0; then
    failed=service
    [ -z "${handover_unready:-}" ] || failed=ready
  elif ! landfall_export_slot; then
    failed=service
  elif [ -n "$handover_pending" ] && ! landfall_handover_listening "$p" "$handover_to"; then
    failed=ready
  elif [ -n "$service_ready" ] && ! landfall_health "$rel" "$service_ready" "$ready_timeout" ready; then
    failed=ready
  elif [ -n "$handover_pending" ] && ! landfall_handover_finish "$p" "$rel"; then
    failed=service
  elif [ -n "$hook_activate" ] && ! landfall_hook activate "$rel" "$hook_activate" "$hook_timeout"; then
    failed=activate
  elif [ -n "$hook_health" ] && ! landfall_health "$rel" "$hook_health" "$health_timeout"; then
    failed=health
  elif [ -n "$confirm" ] && ! landfall_arm "$p" "$id" "$prev" "$confirm" "$token" "$log_ok" "$log_expired"; then
    failed=confirm
  fi
  if [ -z "$failed" ]; then
    # An activation to be confirmed is logged once it is.
    [ -n "$confirm" ] || landfall_log "$p" "$log_ok"
    printf 'activated\t%s\n' "$id"
    return 0
  fi
  printf 'failed\t%s\n' "$failed"
  landfall_service_cause "$rel" "$failed"
  if [ "$revert" = 1 ]; then
    landfall_switch_back "$p" "$id" "$prev" "$log_back"
  fi
  exit 11
}

# landfall_export_slot: for a service with `overlap`, gives `ready` and
# the hooks after it the slot the release's instance runs in, so that a
# check can reach that instance (an address or a socket of its own).
landfall_export_slot() {
  [ "${service_overlap:-0}" = 1 ] && [ -n "${handover_to:-}" ] || return 0
  LANDFALL_SLOT=$handover_to
  export LANDFALL_SLOT
}

# landfall_once lf_path lf_release: runs the `once` hook lf_release
# recorded, in the release (complete, not yet current), before any host
# switches; exits 10 if it fails, and nothing is switched.
landfall_once() {
  rel="$lf_path/releases/$lf_release"
  landfall_complete "$lf_path" "$lf_release"
  landfall_steps "$lf_path"
  landfall_recorded "$rel" || landfall_fail "release $lf_release recorded no activation"
  landfall_current "$lf_path"
  export LANDFALL_PATH="$lf_path" LANDFALL_RELEASE="$lf_release" LANDFALL_PREVIOUS="${c##*/}"
  [ -n "$hook_once" ] || return 0
  if ! landfall_hook once "$rel" "$hook_once" "$hook_timeout"; then
    printf 'failed\tonce\n'
    exit 10
  fi
}

# landfall_check lf_path lf_release: checks again that the activated
# lf_release is well, between the batches of a rollout: one try of its
# service's `ready` and of its health hook, each for at most its time
# limit. Exits 11, reporting the check that failed, if it is not.
landfall_check() {
  rel="$lf_path/releases/$lf_release"
  landfall_current "$lf_path"
  [ "${c##*/}" = "$lf_release" ] || landfall_fail "current is ${c##*/}, not $lf_release"
  landfall_recorded "$rel" || return 0
  export LANDFALL_PATH="$lf_path" LANDFALL_RELEASE="$lf_release"
  handover_to=$(landfall_slot "$lf_path")
  landfall_export_slot
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

# landfall_back lf_path lf_from lf_to lf_log: landfall_switch_back, once
# any watcher of the path is disarmed (see landfall_disarm). When the
# watcher of lf_from's activation had already switched back to lf_to by
# itself, what it did is the answer, and nothing is done twice.
landfall_back() {
  landfall_disarm "$lf_path"
  e="$lf_path/.landfall/confirm.expired"
  landfall_current "$lf_path"
  if [ "$disarmed" = expired ] && [ "$(landfall_record "$e" release)" = "$lf_from" ] &&
    [ "$(landfall_record "$e" previous)" = "$lf_to" ] && [ "$c" = "$lf_to" ]; then
    cat "$lf_path/.landfall/confirm.out" 2>/dev/null
    tail -n 40 "$lf_path/.landfall/confirm.err" >&2 2>/dev/null
    [ "$(landfall_record "$e" status)" = 0 ]
    return
  fi
  landfall_switch_back "$lf_path" "$lf_from" "$lf_to" "$lf_log"
}

# landfall_switch_back PATH FROM TO LOG: switches back to TO (or removes
# `current` when there is none), logs LOG, and runs what TO recorded: its
# service (definition installed and restarted; FROM's service removed if
# TO runs another or none), then the activate and health hooks.
landfall_switch_back() {
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
  if ! landfall_service_switch "$p" "$to" "$old" "$p/releases/$2" 1; then
    printf 'revert-failed\tservice\n'
    landfall_service_cause "$to" service
    return 1
  fi
  landfall_export_slot
  if [ -n "$handover_pending" ] && ! landfall_handover_listening "$p" "$handover_to"; then
    printf 'revert-failed\tready\n'
    landfall_service_cause "$to" ready
    return 1
  fi
  if [ -n "$service_ready" ] && ! landfall_health "$to" "$service_ready" "$ready_timeout" ready; then
    printf 'revert-failed\tready\n'
    landfall_service_cause "$to" ready
    return 1
  fi
  if [ -n "$handover_pending" ] && ! landfall_handover_finish "$p" "$to"; then
    printf 'revert-failed\tservice\n'
    landfall_service_cause "$to" service
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
