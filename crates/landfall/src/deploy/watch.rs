//! Naming the hosts that keep a run waiting: a transport that notes the
//! round trips in flight, and a watcher that says which host a round trip
//! has waited on, every few seconds.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::run::Run;
use crate::assemble::Release;
use crate::event::{Event, Reporter};
use crate::plan::Target;
use crate::steps::{Reply, Script};
use crate::transport::Transport;

/// How often a host that keeps landfall waiting is named.
pub(super) const WAITING_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A transport that notes the round trips in flight, so that a host that
/// keeps landfall waiting can be named while it does.
pub(super) struct Watched<'a> {
    pub(super) inner: &'a dyn Transport,
    pub(super) in_flight: std::sync::Mutex<BTreeMap<u64, (String, std::time::Instant)>>,
    pub(super) next: std::sync::atomic::AtomicU64,
}

impl Watched<'_> {
    pub(super) fn track<T>(&self, host: &str, f: impl FnOnce() -> T) -> T {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.in_flight
            .lock()
            .expect("not poisoned")
            .insert(key, (host.to_string(), std::time::Instant::now()));
        let result = f();
        self.in_flight.lock().expect("not poisoned").remove(&key);
        result
    }

    /// Names every host that has kept a round trip waiting for another
    /// [`WAITING_EVERY`] since it was last named.
    pub(super) fn report_waiting(&self, events: Reporter<'_>, named: &mut BTreeMap<u64, u64>) {
        let in_flight = self.in_flight.lock().expect("not poisoned").clone();
        named.retain(|key, _| in_flight.contains_key(key));
        for (key, (host, started)) in in_flight {
            let seconds = started.elapsed().as_secs();
            let due = seconds / WAITING_EVERY.as_secs();
            let last = named.entry(key).or_insert(0);
            if due > *last {
                *last = due;
                events(Event::Waiting { host, seconds });
            }
        }
    }
}

impl Transport for Watched<'_> {
    fn host_path(&self, target: &Target) -> String {
        self.inner.host_path(target)
    }

    fn run(&self, host: &str, script: &Script) -> Result<Reply, crate::process::ProcessError> {
        self.track(host, || self.inner.run(host, script))
    }

    fn run_over_new_connection(
        &self,
        host: &str,
        script: &Script,
        connect: std::time::Duration,
    ) -> Result<Reply, crate::process::ProcessError> {
        self.track(host, || {
            self.inner.run_over_new_connection(host, script, connect)
        })
    }

    /// Not watched: a stream waits for its output on purpose.
    fn stream(
        &self,
        host: &str,
        script: &Script,
        stop: &(dyn Fn() -> bool + Sync),
        line: &mut dyn FnMut(&str),
    ) -> Result<Reply, crate::process::ProcessError> {
        self.inner.stream(host, script, stop, line)
    }

    /// Not watched: a person is at it.
    fn attach(
        &self,
        host: &str,
        script: &Script,
    ) -> Result<Option<i32>, crate::process::ProcessError> {
        self.inner.attach(host, script)
    }

    fn push(
        &self,
        target: &Target,
        release: &Release,
        basis: crate::transport::Basis<'_>,
        progress: crate::transport::Progress<'_>,
    ) -> crate::error::Result<crate::transport::PushStats> {
        self.track(&target.host, || {
            self.inner.push(target, release, basis, progress)
        })
    }

    fn round_trips(&self) -> BTreeMap<String, usize> {
        self.inner.round_trips()
    }
}

/// Runs `f` with a run whose transport names, every [`WAITING_EVERY`],
/// each host that keeps a round trip waiting; as work on hosts, which a
/// first signal settles (see [`crate::interrupt::on_hosts`]).
pub(crate) fn watching<T>(run: &Run<'_>, f: impl FnOnce(&Run<'_>) -> T) -> T {
    crate::interrupt::on_hosts(|| watching_hosts(run, f))
}

pub(super) fn watching_hosts<T>(run: &Run<'_>, f: impl FnOnce(&Run<'_>) -> T) -> T {
    let watched = Watched {
        inner: run.transport,
        in_flight: std::sync::Mutex::new(BTreeMap::new()),
        next: std::sync::atomic::AtomicU64::new(0),
    };
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let watched = &watched;
        scope.spawn(move || {
            let mut named = BTreeMap::new();
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                finished.recv_timeout(std::time::Duration::from_secs(1))
            {
                watched.report_waiting(run.events, &mut named);
            }
        });
        let watched_run = Run {
            transport: watched,
            ..*run
        };
        let result = f(&watched_run);
        drop(done);
        result
    })
}
