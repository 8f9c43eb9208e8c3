#!/bin/sh
# The hand-written deploy landfall is measured against: plain OpenSSH and
# rsync, one ControlMaster per host, every host in parallel.
#
#   baseline.sh deploy BASE RELEASE BINARY PAYLOAD ENV HOST...
#       rsync the binary and the payload into BASE/releases/RELEASE on each
#       host (--link-dest at the current release, when there is one), write
#       the host's config, switch `current` atomically and run the hook.
#   baseline.sh floor BASE HOST...
#       one `ssh HOST readlink BASE/current` per host: the least a tool that
#       checks whether a host is up to date can do.
#
# SSH_CONFIG names the ssh client configuration, CONTROL_DIR a directory for
# the master connections' sockets, HOOK the command run in the new release.
set -eu

mode=$1
shift
# shellcheck disable=SC2153 # SSH_CONFIG comes from the caller; it is no misspelling of ssh_config.
ssh_config=$SSH_CONFIG

# shellcheck disable=SC2317 # Called through $each below.
floor_host() {
    ssh -F "$ssh_config" "$1" "readlink $base/current" >/dev/null
}

# shellcheck disable=SC2317 # Called through $each below.
deploy_host() {
    host=$1
    ssh="ssh -F $ssh_config -o ControlMaster=auto -o ControlPath=$CONTROL_DIR/%C -o ControlPersist=60"
    # Opens the master connection, and asks for the current release.
    previous=$($ssh "$host" "mkdir -p $base/releases && readlink $base/current || true")
    link_dest=
    if [ -n "$previous" ]; then
        link_dest="--link-dest=../${previous##*/}"
    fi
    rsync -a ${link_dest:+"$link_dest"} -e "$ssh" "$binary" "$payload" "$host:$base/releases/$release/"
    printf '# Rendered for %s in %s.\nname = "%s"\ngreeting = "hello"\n' "$host" "$env" "$host" |
        $ssh "$host" "cd $base && mkdir -p releases/$release/etc &&
            cat > releases/$release/etc/app.toml &&
            ln -sfn releases/$release current.new && mv -T current.new current &&
            cd current && $HOOK"
    $ssh -O exit "$host" 2>/dev/null
}

case $mode in
    floor)
        base=$1
        shift
        each=floor_host
        ;;
    deploy)
        base=$1 release=$2 binary=$3 payload=$4 env=$5
        shift 5
        each=deploy_host
        ;;
    *)
        echo "baseline.sh: unknown mode $mode" >&2
        exit 2
        ;;
esac

pids=
for host in "$@"; do
    $each "$host" &
    pids="$pids $!"
done
failed=0
for pid in $pids; do
    wait "$pid" || failed=1
done
exit $failed
