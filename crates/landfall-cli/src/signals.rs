//! SIGINT and SIGTERM. Before any work on a host is under way (checking,
//! rendering, building, assembling), the first ends the process at once,
//! and the build with it. Otherwise it asks the command's run to stop
//! (its `landfall::interrupt::Cancel`): a deploy or rollback starts no new work,
//! settles what is in flight as a failure would, releases its locks,
//! prints its summary, and the process exits 130 (SIGINT) or 143
//! (SIGTERM). A second signal ends the process at once, after removing the
//! staged files that hold secrets; the steps in flight on the hosts finish
//! there by themselves, so no host is left on a partial release.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The first signal received, or 0.
static FIRST: AtomicI32 = AtomicI32::new(0);

/// The first signal ends what runs as it is meant to end (following a log):
/// nothing to say about it.
static EXPECTED: AtomicBool = AtomicBool::new(false);

/// Says that the first signal is the expected end of the command, not an
/// interruption to explain.
pub(crate) fn expected() {
    EXPECTED.store(true, Ordering::SeqCst);
}

/// Starts listening for SIGINT and SIGTERM, the first of which requests
/// `cancel`. Without it (it cannot fail
/// unless the process is out of resources), the signals keep their default
/// effect.
pub(crate) fn listen(cancel: landfall::interrupt::Cancel) {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if FIRST
                .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                cancel.request();
                landfall::interrupt::end_unless_on_hosts(|| {
                    std::process::exit(exit_status(signal).into());
                });
                if EXPECTED.load(Ordering::SeqCst) {
                    continue;
                }
                crate::render::eprintln!(
                    "landfall: stopping: finishing the work in flight on the hosts, then settling \
                     as a failure would (a second signal ends at once)"
                );
            } else {
                landfall::interrupt::remove_staged_secrets();
                std::process::exit(exit_status(FIRST.load(Ordering::SeqCst)).into());
            }
        }
    });
}

/// The first signal received, if any.
pub(crate) fn received() -> Option<i32> {
    match FIRST.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// The exit status of a process ended by `signal`, as shells report it.
pub(crate) fn exit_status(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(255)
}
