//! uts: a UTS namespace gives the probe its own hostname.
//!
//! uts_namespaces(7): the hostname and NIS domain name belong to a UTS namespace.
//! sethostname(2) in a new one changes only that namespace; the host, reading its own
//! /proc/sys/kernel/hostname at the same moment, still sees its name.

use nix::sched::CloneFlags;
use serde_json::json;

use super::{ns_label, probes_n, Ctx, Lesson, Rootless, Run};
use crate::error::{Error, Result};
use crate::observe::Parts;
use crate::observe::View;
use crate::report::{Fact, Row, Step};
use crate::sandbox::Spec;

pub const LESSON: Lesson = Lesson {
    id: "uts",
    title: "UTS namespace: a hostname of its own",
    mechanism: "CLONE_NEWUTS + sethostname(2)",
    man: "uts_namespaces(7), sethostname(2), hostname(1)",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/uts.md"),
    sees: Parts::ns("uts").with(Parts::HOSTNAME),
    facts: &[],
    words: &["hostname", "host", "utsns", "namespace", "namespaces"],
    imp: super::Imp::Old(run),
};

fn rows(run: &Run<View>) -> Vec<Row> {
    let (host, inside) = (&run.host, &run.inside);
    vec![
        Row::new(
            "hostname (/proc/sys/kernel/hostname)",
            &host.hostname,
            &inside.hostname,
        ),
        Row::new(
            "uts namespace",
            ns_label("uts", host.own_ns("uts")),
            ns_label("uts", inside.own_ns("uts")),
        ),
    ]
}

fn step(id: &str, title: &str, run: Run<View>) -> Step {
    Step {
        takeaway: None,
        columns: None,
        id: id.into(),
        title: title.into(),
        rows: rows(&run),
        actions: run.actions,
        notes: vec![],
        extra: json!({}),
        host: run.host,
        container: run.inside,
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

/// [`check_hostname`] against this host's name (gethostname(2)), before anything runs.
pub fn check_options(wanted: &str) -> Result<()> {
    match nix::unistd::gethostname() {
        Ok(host) => check_hostname(wanted, &host.to_string_lossy()),
        // The lesson reads it again and says what it found.
        Err(_) => Ok(()),
    }
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let host_name = ctx.baseline.hostname.clone();
    let host_uts = ctx.baseline.own_ns("uts");
    let wanted = ctx.options.hostname.clone();
    check_hostname(&wanted, &host_name)?;

    let spec = Spec {
        namespaces: CloneFlags::CLONE_NEWUTS,
        hostname: Some(wanted.clone()),
        ..Spec::default()
    };
    // The after probe renames only its own UTS namespace: the two run side by side.
    let [before, after] = probes_n(
        [Spec::new(CloneFlags::empty()), spec],
        |_, i| i.observe(),
        |_, _| Ok(()),
    )?;
    let before_fact = Fact::new(
        "before-same-hostname",
        format!(
            "before, the probe sees the host's hostname \"{}\"",
            before.inside.hostname
        ),
        before.inside.hostname == host_name && before.inside.own_ns("uts") == host_uts,
        json!({ "inside": before.inside.hostname, "host": host_name }),
    );
    ctx.step(step(
        "before",
        "before: the probe forked with no new namespace",
        before,
    ))?;

    let (host, inside) = (&after.host, &after.inside);
    let facts = vec![
        before_fact,
        Fact::new(
            "hostname-set-inside",
            format!("inside, the hostname is now \"{}\"", inside.hostname),
            inside.hostname == wanted,
            json!({ "inside": inside.hostname, "asked": wanted }),
        ),
        Fact::new(
            "host-hostname-unchanged",
            format!(
                "while the probe is called \"{}\", the host, reading its own hostname at the same moment, is still \"{}\"",
                inside.hostname, host.hostname
            ),
            host.hostname == host_name && host.hostname != inside.hostname,
            json!({ "host_during": host.hostname, "host_before": host_name }),
        ),
        Fact::new(
            "uts-ns-differs",
            format!(
                "the probe's uts namespace ({}) differs from the host's ({})",
                ns_label("uts", inside.own_ns("uts")),
                ns_label("uts", host_uts)
            ),
            inside.own_ns("uts") != host_uts && host.probe.ns("uts") == inside.own_ns("uts"),
            json!({ "inside": inside.own_ns("uts"), "host": host_uts, "host_reads": host.probe.ns("uts") }),
        ),
    ];
    ctx.step(step(
        "after",
        "after: clone(CLONE_NEWUTS), then sethostname",
        after,
    ))?;
    Ok(facts)
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
