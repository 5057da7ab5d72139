//! uts: a UTS namespace gives the probe its own hostname.
//!
//! uts_namespaces(7): the hostname and the NIS domain name belong to a UTS namespace;
//! sethostname(2) in a new one changes only that namespace. proc(5):
//! /proc/sys/kernel/hostname answers for the UTS namespace of the process that reads it,
//! and there is no /proc/<pid>/ file with another process's hostname: so the hostname
//! rows are each side's own, the host's read at the same moment as the probe's.

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure};
use super::kit::{self, StepExt};
use super::{Lesson, Rootless, Run};
use crate::error::{Error, Result};
use crate::observe::{Ns, Parts, View};
use crate::report::{Fact, Row, Step, Val};
use crate::sandbox::Spec;

pub const LESSON: Lesson = super::engine::lesson::<Uts>();

pub struct Uts;

/// The uts lesson's options.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
pub struct UtsOptions {
    /// The hostname the probe sets in its new UTS namespace: 1 to 64 letters, digits, '-'
    /// and '.', not starting with '-', and not this host's own name
    #[arg(long, default_value = "nsx-demo", value_parser = crate::cli::parse_hostname)]
    pub hostname: String,
}

/// The two probe runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    /// A plain fork: no new namespace.
    before: Run<View>,
    /// CLONE_NEWUTS, then sethostname(2).
    after: Run<View>,
}

impl Def for Uts {
    const ID: &'static str = "uts";
    const TITLE: &'static str = "UTS namespace: a hostname of its own";
    const MECHANISM: &'static str = "CLONE_NEWUTS + sethostname(2)";
    const MAN: &'static str = "uts_namespaces(7), sethostname(2), hostname(1)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/uts.md");
    const SEES: Parts = Ns::Uts.part().with(Parts::HOSTNAME);
    const FACTS: &'static [&'static str] = &[
        "before-same-hostname",
        "hostname-set-inside",
        "host-hostname-unchanged",
        "uts-ns-differs",
    ];
    const WORDS: &'static [&'static str] =
        &["hostname", "host", "utsns", "namespace", "namespaces"];
    type Options = UtsOptions;
    type Obs = Obs;

    /// A name equal to the host's would show nothing: a usage error, before anything runs.
    fn check(options: &UtsOptions) -> Result<()> {
        // gethostname(2): this host's name, from the caller's UTS namespace.
        match nix::unistd::gethostname() {
            Ok(host) => check_hostname(&options.hostname, &host.to_string_lossy()),
            // measure reads it again (through /proc) and refuses there.
            Err(_) => Ok(()),
        }
    }

    fn measure(m: &mut Measure, options: &UtsOptions) -> Result<Obs> {
        // The host's name as the baseline read it: the check above may have raced with
        // someone renaming the host.
        check_hostname(&options.hostname, &m.baseline.hostname)?;
        let after = Spec {
            namespaces: CloneFlags::CLONE_NEWUTS,
            hostname: Some(options.hostname.clone()),
            ..Spec::default()
        };
        // The after probe renames only its own UTS namespace: the two run side by side.
        let [before, after] = m.probes_n(
            [Spec::new(CloneFlags::empty()), after],
            |_, i| i.observe(),
            |_, _| Ok(()),
        )?;
        Ok(Obs { before, after })
    }

    fn judge(o: &Obs, options: &UtsOptions, env: &Env) -> Judged {
        let base = &env.baseline;
        let (b, host, inside) = (&o.before.inside, &o.after.host, &o.after.inside);
        let facts = vec![
            Fact::new(
                "before-same-hostname",
                format!(
                    "before, the probe is in the host's UTS namespace ({}) and reads the host's hostname \"{}\"",
                    kit::ns_text(Ns::Uts, b.own(Ns::Uts)),
                    b.hostname
                ),
                b.hostname == base.hostname && kit::same(b.own(Ns::Uts), base.own(Ns::Uts)),
                json!({ "inside": b.hostname, "host": base.hostname }),
            ),
            Fact::new(
                "hostname-set-inside",
                format!(
                    "inside, after sethostname(\"{}\"), /proc/sys/kernel/hostname reads \"{}\"",
                    options.hostname, inside.hostname
                ),
                inside.hostname == options.hostname,
                json!({ "inside": inside.hostname, "asked": options.hostname }),
            ),
            Fact::new(
                "host-hostname-unchanged",
                format!(
                    "while the probe is called \"{}\", the host, reading its own /proc/sys/kernel/hostname at the same moment, is still \"{}\"",
                    inside.hostname, host.hostname
                ),
                host.hostname == base.hostname && host.hostname != inside.hostname,
                json!({ "host_during": host.hostname, "host_before": base.hostname }),
            ),
            kit::ns_differs(Ns::Uts, host, inside, base),
        ];
        let steps = vec![
            step(
                "before",
                "before: the probe forked with no new namespace",
                &o.before,
            ),
            step(
                "after",
                "after: clone(CLONE_NEWUTS), then sethostname",
                &o.after,
            )
            .takeaway(format!(
                "one machine, two names: \"{}\" in the probe's UTS namespace, \"{}\" in the host's, at the same moment",
                inside.hostname, host.hostname
            )),
        ];
        Judged {
            steps,
            facts,
            notes: Vec::new(),
            takeaway: Some(format!(
                "sethostname(\"{}\") in a new UTS namespace renamed the probe only: the host stayed \"{}\"",
                inside.hostname, host.hostname
            )),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        vec![
            F {
                fact: "before-same-hostname",
                what: "the before probe reads another hostname",
                change: |o, _| o.before.inside.hostname = "elsewhere".into(),
            },
            F {
                fact: "before-same-hostname",
                what: "the before probe is in another uts namespace",
                change: |o, _| {
                    o.before.inside.own_ns.insert("uts".into(), 1);
                },
            },
            F {
                fact: "hostname-set-inside",
                what: "the probe still has the host's name",
                change: |o, env| o.after.inside.hostname = env.baseline.hostname.clone(),
            },
            F {
                fact: "host-hostname-unchanged",
                what: "the host took the probe's name",
                change: |o, _| o.after.host.hostname = o.after.inside.hostname.clone(),
            },
            F {
                fact: "uts-ns-differs",
                what: "the probe is in the host's uts namespace",
                change: |o, env| {
                    let host = env.baseline.own_ns["uts"];
                    o.after.inside.own_ns.insert("uts".into(), host);
                },
            },
        ]
    }
}

/// The lesson shows the probe's hostname differ from the host's: a name equal to the
/// host's would show nothing, which is a usage error (exit 2), not the kernel's fault.
pub fn check_hostname(wanted: &str, host: &str) -> Result<()> {
    if wanted == host {
        return Err(Error::Usage(format!(
            "--hostname {wanted:?} is this host's own name: the lesson shows the probe's hostname differ from the host's, which it cannot with the same name on both sides; choose another name (the default is \"nsx-demo\")"
        )));
    }
    Ok(())
}

/// One step: the probe's uts namespace read by both sides, then each side's own
/// namespace and hostname.
fn step(id: &str, title: &str, run: &Run<View>) -> Step {
    let (host, inside) = (&run.host, &run.inside);
    let [ns_probe, ns_own] = kit::ns_rows(Ns::Uts, host, inside);
    let name = Row::own(
        "hostname",
        "/proc/sys/kernel/hostname",
        Val::Hostname(host.hostname.clone()),
        Val::Hostname(inside.hostname.clone()),
    );
    let rows = vec![
        ns_probe,
        ns_own,
        if id == "after" { name.key() } else { name },
    ];
    let step = kit::step(id, title, run, inside, rows);
    if id == "after" {
        step.note("no file under /proc/<pid> holds a process's hostname: /proc/sys/kernel/hostname answers for the reader's UTS namespace, so each side reads its own (nsenter --uts -t PID hostname would read the probe's)")
    } else {
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_own_name_is_a_usage_error() {
        let e = check_hostname("box", "box").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("this host's own name"), "{e}");
        assert!(check_hostname("nsx-demo", "box").is_ok());
    }
}
