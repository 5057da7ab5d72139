//! What lessons share when they judge: a step from a probe run, the rows and facts of a
//! namespace, and the "before, nothing differs" fact.
//!
//! The host column is what the host reads *of the probe* (`/proc/<pid>/…`); the host's
//! own world (nsx's own `/proc/self/…`, its hostname, its mount table) is shown in rows of
//! their own ([`Side::Own`]). So a namespace has two rows: its link read by both sides,
//! which is one inode (one process, read two ways), and each side's own namespace, which
//! differ once the probe is isolated.

use serde_json::json;

use super::Run;
use crate::observe::{Ns, View};
use crate::report::{Fact, Row, Step, Val};

/// A namespace inode as a row value; unread is "not read", never a made-up 0.
pub fn ns_val(ns: Ns, inode: Option<u64>) -> Val {
    match inode {
        Some(inode) => Val::Ns {
            ty: ns.name().to_string(),
            inode,
        },
        None => Val::None("not read".into()),
    }
}

/// `pid:[4026531836]`, or "not read".
pub fn ns_text(ns: Ns, inode: Option<u64>) -> String {
    match inode {
        Some(i) => ns.label(i),
        None => format!("{ns}:[not read]"),
    }
}

/// The two rows of namespace `ns`: the probe's link as each side reads it (one process:
/// the same inode), and each side's own namespace (the host's is nsx's own).
pub fn ns_rows(ns: Ns, host: &View, inside: &View) -> [Row; 2] {
    let file = format!("ns/{ns}");
    [
        Row::probe(
            format!("{ns} namespace"),
            file.clone(),
            ns_val(ns, host.probe.ns_of(ns)),
            ns_val(ns, inside.probe.ns_of(ns)),
        ),
        Row::own(
            format!("{ns} namespace"),
            file,
            ns_val(ns, host.own(ns)),
            ns_val(ns, inside.own(ns)),
        ),
    ]
}

/// Both known and equal: two unread links never make a "same namespace".
pub fn same(a: Option<u64>, b: Option<u64>) -> bool {
    a.is_some() && a == b
}

/// Both known and different.
pub fn differ(a: Option<u64>, b: Option<u64>) -> bool {
    a.is_some() && b.is_some() && a != b
}

/// `<ns>-ns-differs`: the probe's namespace differs from the host's own, and the host,
/// reading the probe's link through /proc/<pid>/ns, finds the probe's namespace (not its
/// own): one process, isolated.
pub fn ns_differs(ns: Ns, host: &View, inside: &View, baseline: &View) -> Fact {
    let probe = inside.own(ns);
    let host_own = baseline.own(ns);
    let host_reads = host.probe.ns_of(ns);
    Fact::new(
        &format!("{ns}-ns-differs"),
        format!(
            "the probe's {ns} namespace ({}) differs from the host's own ({}); the host, reading {}/ns/{ns}, finds {} too",
            ns_text(ns, probe),
            ns_text(ns, host_own),
            host.source,
            ns_text(ns, host_reads),
        ),
        differ(probe, host_own) && same(host_reads, probe),
        json!({ "inside": probe, "host": host_own, "host_reads": host_reads }),
    )
}

/// A step showing one probe run: its actions, its rows, and both views.
pub fn step<T, H>(
    id: &str,
    title: &str,
    run: &Run<T, H>,
    container: &View,
    rows: Vec<Row>,
) -> Step {
    Step {
        id: id.into(),
        title: title.into(),
        actions: run.actions.clone(),
        rows,
        notes: Vec::new(),
        takeaway: None,
        columns: None,
        extra: json!({}),
        host: run.host.clone(),
        container: container.clone(),
    }
}

/// Builder-style additions to a step.
pub trait StepExt {
    fn note(self, text: impl Into<String>) -> Self;
    fn takeaway(self, text: impl Into<String>) -> Self;
    fn extra(self, value: serde_json::Value) -> Self;
}

impl StepExt for Step {
    fn note(mut self, text: impl Into<String>) -> Self {
        self.notes.push(text.into());
        self
    }

    fn takeaway(mut self, text: impl Into<String>) -> Self {
        self.takeaway = Some(text.into());
        self
    }

    fn extra(mut self, value: serde_json::Value) -> Self {
        self.extra = value;
        self
    }
}

/// Processes a procfs lists, as a row value: "1 (PID 1)" when few enough to list.
pub fn processes_val(view: &View) -> Val {
    let p = &view.processes;
    if p.count == 0 {
        return Val::None("not read".into());
    }
    Val::Listed {
        count: p.count as u64,
        first: p.first.clone(),
    }
}

/// `word` as one word of a shell command a student can paste: as it is when it holds
/// only characters no shell treats specially, else in single quotes.
pub fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:=@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Cmp, Side};

    fn view(source: &str, probe_ns: u64, own_ns: u64) -> View {
        let mut v = View {
            source: source.into(),
            ..View::default()
        };
        v.probe.ns.insert("pid".into(), probe_ns);
        v.own_ns.insert("pid".into(), own_ns);
        v
    }

    #[test]
    fn the_probe_row_is_one_inode_and_the_own_row_differs() {
        let host = view("/proc/42", 2, 1);
        let inside = view("/proc/self", 2, 2);
        let [probe, own] = ns_rows(Ns::Pid, &host, &inside);
        assert_eq!((probe.side, probe.cmp.clone()), (Side::Probe, Cmp::Same));
        assert_eq!(probe.host, "pid:[2]");
        assert_eq!((own.side, own.cmp), (Side::Own, Cmp::Differs));
        assert_eq!(
            (own.host.as_str(), own.container.as_str()),
            ("pid:[1]", "pid:[2]")
        );
    }

    #[test]
    fn unread_namespaces_are_never_the_same() {
        assert!(!same(None, None));
        assert!(!differ(None, Some(1)));
        let empty = View::default();
        let f = ns_differs(Ns::Pid, &empty, &empty, &empty);
        assert!(!f.holds);
        let host = view("/proc/42", 2, 1);
        let inside = view("/proc/self", 2, 2);
        let base = view("/proc/self", 1, 1);
        assert!(ns_differs(Ns::Pid, &host, &inside, &base).holds);
        // The host reading another inode through /proc/<pid>/ns breaks it.
        let wrong = view("/proc/42", 3, 1);
        assert!(!ns_differs(Ns::Pid, &wrong, &inside, &base).holds);
    }

    #[test]
    fn a_shell_word_is_quoted_only_when_a_shell_would_split_or_expand_it() {
        assert_eq!(
            shell_word("/sys/fs/cgroup/a.b/nsx-1-2-memory"),
            "/sys/fs/cgroup/a.b/nsx-1-2-memory"
        );
        assert_eq!(shell_word("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_word("it's$x"), "'it'\\''s$x'");
        assert_eq!(shell_word(""), "''");
    }
}
