# systemd, of the system or of the deploy user.

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

# landfall_units_remove MANAGER NAME UNIT: once the service NAME is stopped
# and disabled, stops and disables its socket, and removes its definitions
# (UNIT, its service's unit file, and NAME.socket), or says that only root
# removes them.
landfall_units_remove() {
  d=$(landfall_unit_dir "$1")
  if [ -f "$d/$2.socket" ]; then
    landfall_systemctl "$1" disable --quiet --now "$2.socket" >&2
  fi
  if landfall_may_install "$1"; then
    rm -f "$d/$3" "$d/$2.socket"
    landfall_systemctl "$1" daemon-reload >&2
  else
    printf 'landfall: service %s is stopped and disabled; only root removes %s\n' "$2" "$d/$3" >&2
  fi
}
