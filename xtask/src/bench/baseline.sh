#!/bin/sh
# The hand-written deploy landfall is measured against: plain OpenSSH and
# rsync, one ControlMaster per host, at most $JOBS hosts at a time
# (`xargs -P`, as an operator bounds a fan-out).
#
#   baseline.sh deploy BASE RELEASE BINARY PAYLOAD ENV HOST...
#       rsync the binary and the payload into BASE/releases/RELEASE on each
#       host (--link-dest at the current release, when there is one), write
#       the host's config, switch `current` atomically, run the hook and
#       keep the 3 newest releases, as landfall's `keep = 3` does.
#       The master is closed at the end, unless KEEP=yes: then it stays for
#       the next run (and one opened by `open` is used).
#   baseline.sh floor BASE HOST...
#       one `ssh HOST readlink BASE/current` per host: the least a tool that
#       checks whether a host is up to date can do. A connection of its own,
#       unless KEEP=yes: then over the master `open` left.
#   baseline.sh open HOST...
#       opens a master per host, kept for PERSIST seconds once idle (one
#       already open is used as it is).
#
# SSH_CONFIG names the ssh client configuration, CONTROL_DIR a directory for
# the master connections' sockets, HOOK the command run in the new release,
# JOBS how many hosts are worked on at once, PERSIST how long (seconds) an
# idle master stays, KEEP whether masters stay open after a run.
set -eu

mode=$1
shift
# shellcheck disable=SC2153 # SSH_CONFIG comes from the caller; it is no misspelling of ssh_config.
ssh_config=$SSH_CONFIG
ssh="ssh -F $ssh_config -o ControlPath=$CONTROL_DIR/%C"

# shellcheck disable=SC2317 # Called through $each below.
floor_host() {
    if [ "${KEEP:-no}" = yes ]; then
        $ssh -o ControlMaster=no "$1" "readlink $base/current" >/dev/null
    else
        ssh -F "$ssh_config" "$1" "readlink $base/current" >/dev/null
    fi
}

# shellcheck disable=SC2317 # Called through $each below.
deploy_host() {
    host=$1
    master="$ssh -o ControlMaster=auto -o ControlPersist=$PERSIST"
    # Opens the master connection (or uses the open one), and asks for the
    # current release.
    previous=$($master "$host" "mkdir -p $base/releases && readlink $base/current || true")
    link_dest=
    if [ -n "$previous" ]; then
        link_dest="--link-dest=../${previous##*/}"
    fi
    rsync -a ${link_dest:+"$link_dest"} -e "$master" "$binary" "$payload" "$host:$base/releases/$release/"
    printf '# Rendered for %s in %s.\nname = "%s"\ngreeting = "hello"\n' "$host" "$env" "$host" |
        $master "$host" "cd $base && mkdir -p releases/$release/etc &&
            cat > releases/$release/etc/app.toml &&
            ln -sfn releases/$release current.new && mv -T current.new current &&
            (cd current && $HOOK) &&
            cd releases && ls -1t | tail -n +4 | xargs -r rm -rf --"
    if [ "${KEEP:-no}" != yes ]; then
        $ssh -O exit "$host" 2>/dev/null
    fi
}

# shellcheck disable=SC2317 # Called through $each below.
open_host() {
    $ssh -o ControlMaster=auto -o ControlPersist="$PERSIST" "$1" true
}

case $mode in
    floor | floor1)
        base=$1
        shift
        each=floor_host
        args=$base
        ;;
    deploy | deploy1)
        base=$1 release=$2 binary=$3 payload=$4 env=$5
        shift 5
        each=deploy_host
        args="$base $release $binary $payload $env"
        ;;
    open | open1)
        each=open_host
        args=
        ;;
    *)
        echo "baseline.sh: unknown mode $mode" >&2
        exit 2
        ;;
esac

case $mode in
    *1)
        # One host, for the fan-out below. A failure is status 1, which
        # xargs reports at the end, after the other hosts (255, ssh's, would
        # make it stop reading hosts).
        $each "$1" || exit 1
        ;;
    *)
        # The arguments are paths and names without blanks: the benchmark's.
        # shellcheck disable=SC2086 # $args is split on purpose.
        printf '%s\n' "$@" | xargs -n 1 -P "$JOBS" sh "$0" "${mode}1" $args
        ;;
esac
