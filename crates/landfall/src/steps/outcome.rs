//! How an activation ended on a host, and why a service did not run, read
//! from the reports and the exit of a [`Reply`]: [`Activation`], its
//! [`Revert`], the [`Cause`] the host gave, and what to show of a failure.

use std::fmt::Write as _;

use super::reply::{Exit, Reply, Report, Timer};

/// How an activation ended on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Activation {
    Activated,
    /// Before the switch, `pre_activate` failed or the service manager
    /// cannot be used (`step` is `service`); `current` was not touched.
    PreActivateFailed {
        step: String,
    },
    /// `activate` or `health` failed after the switch.
    Failed {
        step: String,
        revert: Revert,
    },
}

/// Why a service did not run, as its host reported it after a step
/// failed: what its manager said, and the end of its own log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cause {
    /// `systemd`, `systemd-user`, `supervisor`, or `process` (`--local`).
    pub(crate) manager: String,
    /// `running`, `down` (the manager will start it again), `gave-up`, or
    /// `unknown` (the manager did not answer).
    pub(crate) state: String,
    /// The manager's own words: `failed (Result: start-limit-hit)`,
    /// `FATAL Exited too quickly`, `exited with status 1`…
    pub(crate) words: String,
    /// Where its log was read (a file, or the `journalctl` command).
    pub(crate) log_from: Option<String>,
    pub(crate) log: Vec<String>,
    /// Why the log could not be read, if it could not.
    pub(crate) unread: Option<String>,
}

impl Cause {
    /// Whether the manager gave up on the service: it will not run again
    /// unless started anew.
    pub(crate) fn gave_up(&self) -> bool {
        self.state == "gave-up"
    }

    /// A first line with the manager's verdict, then the log's last lines.
    fn describe(&self) -> String {
        let manager = match self.manager.as_str() {
            "systemd" => "systemd",
            "systemd-user" => "the user's systemd",
            "supervisor" => "supervisord",
            _ => "the service's process",
        };
        let words = &self.words;
        let mut text = match (self.state.as_str(), self.manager.as_str()) {
            ("gave-up", "process") => format!("the service's process is gone: it {words}"),
            ("gave-up", _) => format!("{manager} gave up on the service: {words}"),
            ("down", _) => format!("the service is not running ({manager}: {words})"),
            ("running", _) => format!("{manager} says the service runs: {words}"),
            _ => format!("{manager} did not say what became of the service ({words})"),
        };
        if let Some(why) = &self.unread {
            let from = self.log_from.as_deref().unwrap_or("its log");
            let _ = write!(text, "\nits log cannot be read (`{from}`): {why}");
        } else if let Some(from) = &self.log_from {
            let lines: Vec<&str> = self
                .log
                .iter()
                .map(String::as_str)
                .filter(|l| !l.trim().is_empty())
                .collect();
            if lines.is_empty() {
                let _ = write!(text, "\nits log (`{from}`) is empty");
            } else {
                let _ = write!(text, "\nthe last lines of its log (`{from}`):");
                for line in lines {
                    text.push('\n');
                    text.push_str(line);
                }
            }
        }
        text
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revert {
    /// Not asked to switch back.
    NotAttempted,
    /// Back on the previous release (or on none, if there was none) and,
    /// as far as its own activate and health tell, working.
    Done { to: Option<String> },
    /// Switched back, but activate or health failed there too.
    Failed { to: Option<String>, step: String },
}

impl Reply {
    fn failed_step(&self) -> Option<&str> {
        self.reports.iter().find_map(|r| match r {
            Report::Failed { step } => Some(step.as_str()),
            _ => None,
        })
    }

    /// How `landfall_activate` ended, if it ended as it documents.
    pub(crate) fn activation(&self) -> Option<Activation> {
        let activated = self
            .reports
            .iter()
            .any(|r| matches!(r, Report::Activated { .. }));
        match self.exit {
            Exit::Done if activated => Some(Activation::Activated),
            Exit::PreActivateFailed => Some(Activation::PreActivateFailed {
                step: self.failed_step().unwrap_or("pre_activate").to_string(),
            }),
            Exit::ActivationFailed => Some(Activation::Failed {
                step: self.failed_step().unwrap_or("activate").to_string(),
                revert: self.revert(),
            }),
            _ => None,
        }
    }

    /// When the watcher an activation armed switches back (the host's
    /// clock, in seconds since the epoch), if it armed one.
    pub(crate) fn armed(&self) -> Option<i64> {
        self.reports.iter().find_map(|r| match r {
            Report::Armed { deadline, .. } => Some(*deadline),
            _ => None,
        })
    }

    /// What `landfall_confirm` found of the watcher of `release`'s
    /// activation, if it said.
    pub(crate) fn timer(&self, release: &str) -> Option<Timer> {
        self.reports.iter().find_map(|r| match r {
            Report::Confirm { release: of, timer } if of == release => Some(timer.clone()),
            _ => None,
        })
    }

    /// How switching back (`landfall_back`) went, if it was tried.
    pub(crate) fn revert(&self) -> Revert {
        let Some(to) = self.reports.iter().find_map(|r| match r {
            Report::Reverted { to } => Some(to.clone()),
            _ => None,
        }) else {
            return Revert::NotAttempted;
        };
        match self.reports.iter().find_map(|r| match r {
            Report::RevertFailed { step } => Some(step.clone()),
            _ => None,
        }) {
            Some(step) => Revert::Failed { to, step },
            None => Revert::Done { to },
        }
    }

    /// A line for each hook stopped at its time limit.
    fn timeouts(&self) -> String {
        let mut text = String::new();
        for report in &self.reports {
            if let Report::Timeout { hook, seconds } = report {
                let _ = writeln!(
                    text,
                    "the {hook} hook did not finish within {seconds}s and was stopped"
                );
            }
        }
        text
    }

    /// What the hooks of a step left to show: a line for each hook stopped
    /// at its time limit, then the tail of their output.
    pub(crate) fn hook_output(&self) -> String {
        let mut text = self.timeouts();
        text.push_str(&self.output.stderr_tail());
        text.trim_end().to_string()
    }

    /// What the host said of the service after a step failed: the first
    /// for the release activated (or checked), the second for the one
    /// switched back to (see `landfall_service_cause`).
    pub(crate) fn causes(&self) -> (Option<Cause>, Option<Cause>) {
        let (mut ours, mut back) = (None, None);
        let mut reverted = false;
        for report in &self.reports {
            let slot = if reverted { &mut back } else { &mut ours };
            match report.clone() {
                Report::Reverted { .. } => reverted = true,
                Report::Verdict {
                    manager,
                    state,
                    words,
                } => {
                    *slot = Some(Cause {
                        manager,
                        state,
                        words,
                        ..Cause::default()
                    });
                }
                Report::ServiceLog { from } => {
                    if let Some(cause) = slot {
                        cause.log_from = Some(from);
                    }
                }
                Report::ServiceLogLine { line } => {
                    if let Some(cause) = slot {
                        cause.log.push(line);
                    }
                }
                Report::ServiceLogUnread { from, why } => {
                    if let Some(cause) = slot {
                        cause.log_from = Some(from);
                        cause.unread = Some(why);
                    }
                }
                _ => {}
            }
        }
        (ours, back)
    }

    /// What to show of a step that failed after the switch: a line for
    /// each hook stopped at its time limit, then, where the host said why
    /// the service did not run (its manager's verdict and the end of its
    /// own log), that, for the release activated and for the one switched
    /// back to; else the tail of the hooks' output. The output of hooks
    /// that passed (`pre_activate`'s) is no cause of a service's failure.
    pub(crate) fn failure_output(&self) -> String {
        let (ours, back) = self.causes();
        if ours.is_none() && back.is_none() {
            return self.hook_output();
        }
        let mut text = self.timeouts();
        if let Some(cause) = ours {
            let _ = writeln!(text, "{}", cause.describe());
        }
        if let Some(cause) = back {
            let _ = writeln!(text, "after switching back, {}", cause.describe());
        }
        text.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Output;
    use crate::steps::reply::reply;

    #[test]
    fn activation_outcomes() {
        assert_eq!(
            reply(0, "switched\tx\nactivated\tx\n").activation(),
            Some(Activation::Activated)
        );
        assert_eq!(
            reply(10, "failed\tpre_activate\n").activation(),
            Some(Activation::PreActivateFailed {
                step: "pre_activate".into()
            })
        );
        assert_eq!(
            reply(10, "failed\tservice\n").activation(),
            Some(Activation::PreActivateFailed {
                step: "service".into()
            })
        );
        assert_eq!(
            reply(11, "switched\tx\nfailed\thealth\nreverted\tp\n").activation(),
            Some(Activation::Failed {
                step: "health".into(),
                revert: Revert::Done {
                    to: Some("p".into())
                }
            })
        );
        assert_eq!(
            reply(11, "failed\tactivate\nreverted\tp\nrevert-failed\thealth\n").activation(),
            Some(Activation::Failed {
                step: "activate".into(),
                revert: Revert::Failed {
                    to: Some("p".into()),
                    step: "health".into()
                }
            })
        );
        assert_eq!(reply(0, "switched\tx\n").activation(), None);
        assert_eq!(reply(70, "").activation(), None);
        assert_eq!(reply(2, "").exit, Exit::Other(Some(2)));
    }

    #[test]
    fn a_service_that_did_not_run_is_shown_by_its_managers_verdict_and_log_not_by_hook_output() {
        let r = Reply::from(Output {
            code: Some(11),
            stdout: "hook\tpre_activate\nswitched\tx\nhook\tservice\nrestarted\tapp\n\
                     hook\tready\nfailed\tready\n\
                     verdict\tsystemd\tgave-up\tfailed (Result: start-limit-hit), restarted 4 times\n\
                     service-log\tjournalctl -u app.service\n\
                     service-log-line\trefusing to start\n\
                     service-log-line\tapp.service: Start request repeated too quickly.\n\
                     reverted\tp\nhook\tservice\nrestarted\tapp\nhook\tready\nrevert-failed\tready\n\
                     verdict\tsupervisor\tdown\tBACKOFF Exited too quickly\n\
                     service-log-unread\t/var/log/supervisor/app.log\tdeploy cannot read it\n"
                .into(),
            stderr: b"the configuration is fine\n".to_vec(),
        });
        let (ours, back) = r.causes();
        assert!(ours.as_ref().is_some_and(Cause::gave_up));
        assert!(!back.as_ref().unwrap().gave_up());
        assert_eq!(
            r.failure_output(),
            "systemd gave up on the service: failed (Result: start-limit-hit), restarted 4 times\n\
             the last lines of its log (`journalctl -u app.service`):\n\
             refusing to start\n\
             app.service: Start request repeated too quickly.\n\
             after switching back, the service is not running (supervisord: BACKOFF Exited too \
             quickly)\n\
             its log cannot be read (`/var/log/supervisor/app.log`): deploy cannot read it"
        );
        // Without a verdict, the hooks' output is what there is to show.
        let r = Reply::from(Output {
            code: Some(11),
            stdout: "failed\thealth\n".into(),
            stderr: b"health says no\n".to_vec(),
        });
        assert_eq!(r.causes(), (None, None));
        assert_eq!(r.failure_output(), "health says no");
    }
}
