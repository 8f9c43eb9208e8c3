# landfall's steps on a host: POSIX sh and coreutils only, no agent.
#
# These files (this one first, then the others of steps/sh/ in the order
# parts.rs gives) hold functions only, and are sent as one text. landfall
# renders each step it wants run as a call of its function, puts the
# functions the calls need before them, wraps the whole in one `{ ...; }`
# group (so that a script cut short is a syntax error and runs nothing),
# and feeds it to `sh -s`, on the local machine or over ssh. Because the
# script arrives on standard input, nothing here may read standard input
# except from a here-document: hooks get /dev/null.
#
# A step function (one landfall calls, whose comment names its arguments
# `lf_NAME`) reads each argument from the variable of that name, which the
# call sets, shell-quoted, for itself alone (they are unset before the
# next call), and a list, if it takes one (its comment names it last, in
# capitals), as its positional parameters, read only as "$@":
#
#   lf_path='/srv/my app' lf_release=4f1c lf_max=65536
#   landfall_files etc/app.toml VERSION
#   unset lf_path lf_release lf_max
#   lf_path='/srv/my app' lf_release=4f1c lf_provenance='{"user":"ann"}'
#   landfall_finalize
#
# No other function reads an `lf_` variable: what a step function calls
# gets its arguments as positional parameters (named in capitals).
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

# landfall_hex WORD: whether WORD is empty or hex digits only, as release
# ids are.
landfall_hex() {
  case $1 in *[!0-9a-f]*) return 1 ;; esac
}

# landfall_canonical PATH: prints PATH as it is on disk, every link
# followed and every `.`, `..` and empty component resolved (PATH must be
# a directory); fails if it is none.
landfall_canonical() {
  case $1 in /*) ;; *) return 1 ;; esac
  (cd -P -- "$1" 2>/dev/null && pwd -P)
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
