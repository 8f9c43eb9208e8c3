// The host steps, `steps.sh`, as one text: its parts joined in this
// order, what every host receives. Included (`include!`) where the text is
// needed: by the steps module, and by the tests that run or read the steps,
// so that the list of parts is written once. `common.sh` comes first: its
// lines outside any function (`set -u`, `umask`, `trap`) and its file-wide
// shellcheck directive open the script.
concat!(
    include_str!("common.sh"),
    include_str!("probe.sh"),
    include_str!("lock.sh"),
    include_str!("release.sh"),
    include_str!("activate.sh"),
    include_str!("confirm.sh"),
    include_str!("service.sh"),
    include_str!("systemd.sh"),
    include_str!("supervisor.sh"),
    include_str!("process.sh"),
    include_str!("handover.sh"),
    include_str!("logs.sh"),
    include_str!("prune.sh"),
    include_str!("exec.sh"),
)
