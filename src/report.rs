//! The report a lesson returns: steps with both views, and the facts computed from them.
//!
//! This is the JSON contract (`nsx lesson <id> --format json`, docs/json.md): `lesson`,
//! `ok`, `privilege`, `facts[] {id, claim, holds}` and `steps[] {id, host, container}` are
//! stable; other fields may be added, none renamed or removed.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::observe::View;

/// Whether nsx ran as root or created a user namespace to run without privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    Root,
    Rootless,
}

impl Privilege {
    pub fn current() -> Self {
        if nix::unistd::geteuid().is_root() {
            Privilege::Root
        } else {
            Privilege::Rootless
        }
    }
}

/// The machine a run was measured on: what a replay says about where it came from, and
/// what a lesson's verdicts may depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// `uname -r`.
    pub kernel: String,
    /// "v1", "hybrid", "v2", or "none" without a cgroup file system.
    pub cgroup: String,
    pub privilege: Privilege,
    /// The uid nsx ran as.
    pub uid: u32,
}

impl Machine {
    /// This machine, now.
    pub fn current() -> Machine {
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let cgroup = match crate::cgroup::Layout::current_for(&[]) {
            Ok(l) => l.mode.to_string(),
            Err(_) => "none".to_string(),
        };
        Machine {
            kernel,
            cgroup,
            privilege: Privilege::current(),
            uid: nix::unistd::getuid().as_raw(),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Linux {}, cgroup {}, as {}",
            self.kernel,
            self.cgroup,
            match self.privilege {
                Privilege::Root => "root".to_string(),
                Privilege::Rootless => format!("uid {} (rootless)", self.uid),
            }
        )
    }
}

/// Where a replayed report was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    /// The recording file.
    pub file: String,
    /// The nsx version that recorded it.
    pub recorded_by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub lesson: String,
    pub title: String,
    pub mechanism: String,
    /// True exactly when every fact in `facts` holds (and there is at least one).
    pub ok: bool,
    pub privilege: Privilege,
    /// Things the reader must know about this run (e.g. "a user namespace was added").
    #[serde(default)]
    pub notes: Vec<String>,
    pub steps: Vec<Step>,
    /// The facts this run decided.
    pub facts: Vec<Fact>,
    /// Facts this run could not decide (a measurement too noisy to judge), each with its
    /// reason: neither a failure nor a pass, so they do not change `ok`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inconclusive: Vec<Fact>,
    /// The lesson's point in one sentence, from this run's facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takeaway: Option<String>,
    /// Where the observations were made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
    /// Set when the report was rendered from a recording, not measured now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replay>,
}

impl Report {
    pub fn held(&self) -> usize {
        self.facts.iter().filter(|f| f.holds).count()
    }
}

/// One run of the probe: what was done, and what each side saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Stable id: "before", "after", "control", ...
    pub id: String,
    pub title: String,
    /// The system calls and file writes this step made, in order, as a student would type them.
    pub actions: Vec<String>,
    /// The rows shown side by side, derived from the two views.
    pub rows: Vec<Row>,
    /// Sentences computed from this step's observations.
    #[serde(default)]
    pub notes: Vec<String>,
    /// This step's point in one sentence, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takeaway: Option<String>,
    /// The two columns' headings when they are not the host's and the probe's view of one
    /// process (the cost lesson: a time and a bar); rows then compare nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<[String; 2]>,
    /// Lesson-specific values the probe reported besides its view (e.g. getpid()).
    #[serde(default)]
    pub extra: Value,
    /// What the host saw of the probe (through /proc/<pid>) and of itself.
    pub host: View,
    /// What the probe saw of itself (through its own /proc/self).
    pub container: View,
}

/// Which pair of things a row sets side by side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// One process read two ways: the host through /proc/<pid>, the probe through
    /// /proc/self. A difference is the kernel translating (a PID, a uid, a path).
    #[default]
    Probe,
    /// Each side's own world: the host's (nsx's own /proc/self, its hostname, its mount
    /// table) beside the probe's. A difference is the isolation itself.
    Own,
}

/// How a row's two values compare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "is", content = "why", rename_all = "lowercase")]
pub enum Cmp {
    Same,
    Differs,
    /// Different, for a reason outside the lesson (the two were read at different
    /// moments and other processes came and went): not flagged.
    Drift(String),
    /// Not comparable (different units or sources): never flagged.
    Apart(String),
    /// Only one side has a value (a host's own world row with nothing inside, a probe
    /// that died before it looked).
    Alone,
}

impl Cmp {
    pub fn flagged(&self) -> bool {
        matches!(self, Cmp::Differs)
    }
}

/// A value shown in a row, typed so that comparisons mean something and tests can tell
/// what is volatile (PIDs, inodes, counts on a busy host, times) without guessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Val {
    /// A PID as some procfs shows it.
    Pid(i32),
    /// A list of PIDs (NSpid).
    Pids(Vec<i32>),
    /// A namespace: type and inode (`pid:[4026531836]`).
    Ns { ty: String, inode: u64 },
    /// A number that is the lesson's point (1 process, uid 0).
    Num(i64),
    /// A count of things on the host that come and go (processes, mounts).
    Count(u64),
    /// Processes a procfs lists: how many, and the lowest PIDs (shown when all fit).
    Listed { count: u64, first: Vec<i32> },
    /// A uid or gid.
    Id(u32),
    /// A size in bytes.
    Bytes(u64),
    /// A duration in microseconds.
    Micros(f64),
    /// A duration in milliseconds, for what a student reads in ms (CPU time of a spin).
    Millis(f64),
    /// The host's name (volatile between machines).
    Hostname(String),
    /// A path on this machine (temp dirs, cgroup paths carry PIDs).
    Path(String),
    /// Names in a directory (`ls`): compared in full, shown in full when few, else as a
    /// count.
    Names(Vec<String>),
    /// Anything else, shown as is.
    Text(String),
    /// Nothing to show on this side, with the reason ("not read", "the probe died").
    None(String),
}

impl Val {
    /// How many names [`Val::Names`] shows before it shows only their count.
    pub const NAMES_SHOWN: usize = 12;

    pub fn text(s: impl Into<String>) -> Val {
        Val::Text(s.into())
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Val::None(_))
    }

    /// True for values that change from run to run or machine to machine.
    pub fn is_volatile(&self) -> bool {
        matches!(
            self,
            Val::Pid(_)
                | Val::Pids(_)
                | Val::Listed { .. }
                | Val::Ns { .. }
                | Val::Count(_)
                | Val::Micros(_)
                | Val::Millis(_)
                | Val::Hostname(_)
                | Val::Path(_)
        )
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Pid(p) => write!(f, "{p}"),
            Val::Pids(p) => {
                let s: Vec<String> = p.iter().map(|p| p.to_string()).collect();
                write!(f, "{}", s.join(" "))
            }
            Val::Ns { ty, inode } => write!(f, "{ty}:[{inode}]"),
            Val::Num(n) => write!(f, "{n}"),
            Val::Count(n) => write!(f, "{n}"),
            Val::Listed { count, first } if *count as usize <= first.len() => {
                let list: Vec<String> = first.iter().map(|p| p.to_string()).collect();
                write!(f, "{count} (PID {})", list.join(", "))
            }
            Val::Listed { count, .. } => write!(f, "{count}"),
            Val::Id(n) => write!(f, "{n}"),
            Val::Bytes(b) => write!(f, "{}", crate::lessons::kit::cgroup::format_mib(*b)),
            Val::Micros(us) => write!(f, "{us:.0} µs"),
            Val::Names(n) if n.len() <= Val::NAMES_SHOWN => write!(f, "{}", n.join(" ")),
            Val::Names(n) => write!(f, "{} entries", n.len()),
            Val::Millis(ms) => write!(f, "{ms:.0} ms"),
            Val::Hostname(s) | Val::Path(s) | Val::Text(s) => write!(f, "{s}"),
            Val::None(_) => write!(f, "-"),
        }
    }
}

macro_rules! val_from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for Val {
            fn from(x: $t) -> Val { Val::$v(x.into()) }
        }
    )*};
}
val_from!(String => Text, &str => Text);

/// One line of the side-by-side table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub label: String,
    /// What each side read, relative to its column's directory ("ns/pid", "status
    /// NSpid") or an absolute path: every row names its file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
    /// The host's value, as shown.
    pub host: String,
    /// The probe's value, as shown.
    pub container: String,
    #[serde(default)]
    pub side: Side,
    pub cmp: Cmp,
    /// The row that carries the step's point.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key: bool,
    /// The two values, typed (host, probe).
    pub values: [Val; 2],
}

impl Row {
    /// A row of two texts, compared as text. Prefer [`Row::probe`] and [`Row::own`],
    /// which compare typed values.
    pub fn new(label: impl Into<String>, host: impl ToString, container: impl ToString) -> Self {
        let (h, c) = (host.to_string(), container.to_string());
        Row::typed(label, "", Side::Probe, Val::Text(h), Val::Text(c))
    }

    /// The probe read two ways: the host through /proc/<pid>/`file`, the probe through
    /// /proc/self/`file`.
    pub fn probe(
        label: impl Into<String>,
        file: impl Into<String>,
        host: impl Into<Val>,
        container: impl Into<Val>,
    ) -> Self {
        Row::typed(label, file, Side::Probe, host.into(), container.into())
    }

    /// Each side's own world: the host's beside the probe's.
    pub fn own(
        label: impl Into<String>,
        file: impl Into<String>,
        host: impl Into<Val>,
        container: impl Into<Val>,
    ) -> Self {
        Row::typed(label, file, Side::Own, host.into(), container.into())
    }

    fn typed(
        label: impl Into<String>,
        file: impl Into<String>,
        side: Side,
        host: Val,
        container: Val,
    ) -> Self {
        let cmp = compare(&host, &container);
        Row {
            label: label.into(),
            file: file.into(),
            host: host.to_string(),
            container: container.to_string(),
            side,
            cmp,
            key: false,
            values: [host, container],
        }
    }

    /// Marks the row that carries the step's point.
    pub fn key(mut self) -> Self {
        self.key = true;
        self
    }

    /// When `drifts` holds, a difference between the two values is drift (the two reads
    /// happened at different moments; `why` says what moved), not a difference to flag.
    pub fn drift_if(mut self, drifts: bool, why: impl Into<String>) -> Self {
        if drifts && self.cmp == Cmp::Differs {
            self.cmp = Cmp::Drift(why.into());
        }
        self
    }

    /// The two values are not comparable: `why` says what each is.
    pub fn apart(mut self, why: impl Into<String>) -> Self {
        self.cmp = Cmp::Apart(why.into());
        self
    }

    /// The two sides disagree in a way the lesson is about: the renderer flags these.
    pub fn differs(&self) -> bool {
        self.cmp.flagged()
    }
}

/// Same, differs, or alone: typed values of different kinds never compare equal.
fn compare(a: &Val, b: &Val) -> Cmp {
    match (a, b) {
        (Val::None(_), Val::None(_)) => Cmp::Same,
        (Val::None(_), _) | (_, Val::None(_)) => Cmp::Alone,
        // Two listings compare by how many processes they hold.
        (Val::Listed { count: x, .. }, Val::Listed { count: y, .. }) => {
            if x == y {
                Cmp::Same
            } else {
                Cmp::Differs
            }
        }
        (a, b) if std::mem::discriminant(a) != std::mem::discriminant(b) => {
            Cmp::Apart("different kinds of value".into())
        }
        (a, b) if a == b => Cmp::Same,
        _ => Cmp::Differs,
    }
}

/// A teaching point, checked against this run's observations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fact {
    pub id: String,
    pub claim: String,
    pub holds: bool,
    /// The observed values the verdict was computed from.
    pub observed: Value,
    /// Why this run cannot decide the fact (a measurement too noisy to judge): set on
    /// the facts in [`Report::inconclusive`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive: Option<String>,
}

impl Fact {
    pub fn new(id: &str, claim: impl Into<String>, holds: bool, observed: Value) -> Self {
        Fact {
            id: id.to_string(),
            claim: claim.into(),
            holds,
            observed,
            inconclusive: None,
        }
    }

    /// This run cannot decide the fact, for `reason`: it is reported apart, neither held
    /// nor failed. A clear contradiction must stay a plain failing fact instead.
    pub fn inconclusive(mut self, reason: impl Into<String>) -> Self {
        self.holds = false;
        self.inconclusive = Some(reason.into());
        self
    }

    /// Marks a fact that does not hold as inconclusive, with `reason`, when `starved`
    /// says its measurement could not show anything. A fact that holds stays as it is.
    pub fn inconclusive_when(self, starved: bool, reason: impl FnOnce() -> String) -> Self {
        if !self.holds && starved {
            self.inconclusive(reason())
        } else {
            self
        }
    }

    /// Did not hold, and nothing explains it but the kernel.
    pub fn fails(&self) -> bool {
        !self.holds && self.inconclusive.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_compare_like_with_like() {
        let r = Row::probe("PID", "status Pid", Val::Pid(5092), Val::Pid(1));
        assert_eq!(r.cmp, Cmp::Differs);
        assert_eq!((r.host.as_str(), r.container.as_str()), ("5092", "1"));
        let r = Row::probe("PID", "status Pid", Val::Pid(7), Val::Pid(7));
        assert_eq!(r.cmp, Cmp::Same);
        // A size and a text never compare equal, nor are they flagged.
        let r = Row::own("rss", "", Val::Bytes(1 << 20), Val::text("1.0 MiB"));
        assert!(matches!(r.cmp, Cmp::Apart(_)) && !r.differs());
        // One side empty: nothing to flag.
        let r = Row::own("x", "", Val::None("not read".into()), Val::Num(1));
        assert_eq!(r.cmp, Cmp::Alone);
        assert_eq!(r.host, "-");
    }

    #[test]
    fn listings_compare_in_full_even_when_shown_as_a_count() {
        let many = |last: &str| {
            let mut v: Vec<String> = (0..20).map(|i| format!("d{i}")).collect();
            v.push(last.into());
            Val::Names(v)
        };
        let r = Row::probe("ls", "root/", many("x"), many("y"));
        assert_eq!(
            (r.host.as_str(), r.container.as_str()),
            ("21 entries", "21 entries")
        );
        assert_eq!(r.cmp, Cmp::Differs);
        let r = Row::probe("ls", "root/", Val::Names(vec!["bin".into()]), many("x"));
        assert_eq!(r.host, "bin");
        assert_eq!(Row::probe("ls", "", many("x"), many("x")).cmp, Cmp::Same);
    }

    #[test]
    fn drift_is_not_flagged_and_says_why() {
        let r = Row::own("processes", "/proc", Val::Count(116), Val::Count(115))
            .drift_if(true, "other processes came and went");
        assert_eq!(r.cmp, Cmp::Drift("other processes came and went".into()));
        assert!(!r.differs());
        // A real difference stays one when the sides are not supposed to agree.
        let r = Row::own("processes", "/proc", Val::Count(116), Val::Count(1)).drift_if(false, "x");
        assert!(r.differs());
        // Equal values stay the same whatever drift_if says.
        let r = Row::own("p", "", Val::Count(3), Val::Count(3)).drift_if(true, "x");
        assert_eq!(r.cmp, Cmp::Same);
    }

    #[test]
    fn only_a_fact_that_does_not_hold_can_be_made_inconclusive_by_starvation() {
        let starved = || "the machine was busy".to_string();
        let held = Fact::new("a", "a", true, Value::Null).inconclusive_when(true, starved);
        assert!(held.inconclusive.is_none() && !held.fails());
        let failed = Fact::new("b", "b", false, Value::Null).inconclusive_when(false, starved);
        assert!(failed.fails());
        let unjudged = Fact::new("c", "c", false, Value::Null).inconclusive_when(true, starved);
        assert!(!unjudged.holds && !unjudged.fails());
        let json = serde_json::to_value(&unjudged).unwrap();
        assert_eq!(json["inconclusive"], "the machine was busy");
        assert!(serde_json::to_value(&held)
            .unwrap()
            .get("inconclusive")
            .is_none());
    }

    #[test]
    fn inconclusive_facts_carry_their_reason_and_do_not_hold() {
        let f = Fact::new("x", "c", true, Value::Null).inconclusive("the machine was busy");
        assert!(!f.holds);
        assert_eq!(f.inconclusive.as_deref(), Some("the machine was busy"));
    }
}
