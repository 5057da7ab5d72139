//! The lessons, in curriculum order, and the context they run in.
//!
//! A lesson runs probes through the sandbox, turns what both sides saw into steps and
//! facts, and never prints: the renderer does, as each step arrives.

pub mod caps;
pub mod cgroup_steps;
pub mod cgroupns;
pub mod cost;
pub mod cpu;
pub mod engine;
pub mod init;
pub mod ipc;
pub mod kit;
pub mod masks;
pub mod memory;
pub mod mount;
pub mod needs;
pub mod net;
pub mod pid;
pub mod pids;
pub mod pod;
pub mod rootfs;
pub mod seccomp;
pub mod tcp;
pub mod time;
pub mod user;
pub mod uts;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::observe::{self, View};
use crate::report::{Privilege, Report, Step};

/// Whether a lesson can run without root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rootless {
    /// Runs rootless inside a user namespace nsx creates.
    Yes,
    /// Needs root on the host, with the reason.
    No(&'static str),
}

/// One lesson: what it is, and how it runs.
pub struct Lesson {
    pub id: &'static str,
    pub title: &'static str,
    pub mechanism: &'static str,
    /// The man pages to read next.
    pub man: &'static str,
    pub rootless: Rootless,
    /// lessons/<id>.md, shown by --explain and included by the book.
    pub narrative: &'static str,
    /// What its views read from /proc: what its rows and facts show, nothing more
    /// (every view also reads the probe's status).
    pub sees: observe::Parts,
    /// Every fact the lesson decides.
    pub facts: &'static [&'static str],
    /// Words a student may type for this lesson (`nsx lesson cgroups` suggests the
    /// lessons that carry "cgroups").
    pub words: &'static [&'static str],
    /// Its two halves and its options, behind function pointers ([`engine::lesson`]).
    pub imp: engine::Erased,
}

/// Every lesson, in curriculum order.
pub static LESSONS: &[Lesson] = &[
    pid::LESSON,
    mount::LESSON,
    uts::LESSON,
    ipc::LESSON,
    net::LESSON,
    user::LESSON,
    cgroupns::LESSON,
    time::LESSON,
    memory::LESSON,
    cpu::LESSON,
    pids::LESSON,
    rootfs::LESSON,
    init::LESSON,
    pod::LESSON,
    caps::LESSON,
    masks::LESSON,
    seccomp::LESSON,
    cost::LESSON,
];

pub fn find(id: &str) -> Option<&'static Lesson> {
    LESSONS.iter().find(|l| l.id == id)
}

/// The lesson of the measure + judge shape whose own option `flag` is (`--memory`: the
/// memory lesson), for a usage error that says where a misplaced flag belongs.
pub fn flag_owner(flag: &str) -> Option<&'static Lesson> {
    let name = flag.strip_prefix("--")?;
    LESSONS.iter().find(|l| {
        (l.imp.command)().get_arguments().any(|a| {
            a.get_long() == Some(name)
                || a.get_visible_aliases()
                    .is_some_and(|aliases| aliases.contains(&name))
        })
    })
}

pub fn ids() -> Vec<&'static str> {
    LESSONS.iter().map(|l| l.id).collect()
}

/// Whether this machine can run a lesson, and if not why and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Support {
    Yes,
    No { reason: String, fix: String },
}

impl Lesson {
    /// The lesson's `nsx lesson <id>` subcommand, with its own options.
    pub fn command(&self) -> clap::Command {
        (self.imp.command)()
    }

    /// The options it runs with when none are given (the tour), serialised.
    pub fn default_options(&self) -> Result<serde_json::Value> {
        (self.imp.options)(None)
    }

    /// The options given to its subcommand, checked and serialised.
    pub fn options(&self, matches: &clap::ArgMatches) -> Result<serde_json::Value> {
        (self.imp.options)(Some(matches))
    }

    /// Checks this machine for what the lesson needs ([`Lesson::needs`], its `rootless`
    /// field, the user-namespace sysctls without root), without creating anything: the
    /// same decision `nsx doctor` shows ([`crate::doctor::check`]).
    pub fn support(&self) -> Support {
        crate::doctor::support(self)
    }
}

/// Reads the sysctls that forbid unprivileged user namespaces. `None` when none does.
pub fn userns_restriction() -> Option<(String, String)> {
    userns_restriction_in(std::path::Path::new("/proc/sys"))
}

pub fn userns_restriction_in(sys: &std::path::Path) -> Option<(String, String)> {
    let read = |p: &str| {
        std::fs::read_to_string(sys.join(p))
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("user/max_user_namespaces").as_deref() == Some("0") {
        return Some((
            "user.max_user_namespaces is 0, so no user namespace can be created".into(),
            "sudo sysctl -w user.max_user_namespaces=15000 (or run nsx as root)".into(),
        ));
    }
    if read("kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some((
            "kernel.unprivileged_userns_clone is 0: this kernel forbids user namespaces to unprivileged users".into(),
            "sudo sysctl -w kernel.unprivileged_userns_clone=1 (or run nsx as root)".into(),
        ));
    }
    if read("kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return Some((
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1, the Ubuntu 24.04 default): the namespace is created but gets no capabilities".into(),
            "run nsx as root, or sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 for the workshop".into(),
        ));
    }
    None
}

/// Where a lesson's steps go as they are judged, and where a live class waits.
pub trait Presenter {
    /// A step to show now.
    fn show(&mut self, step: &Step) -> Result<()>;
    /// Wait before going on (with --step): the last step shown is on screen. `look` holds
    /// commands a second terminal can run to see that step's mechanism, which is alive
    /// while nsx waits (empty when it is gone already).
    fn pause(&mut self, look: &[String]) -> Result<()>;
    /// Whether this presenter waits at all.
    fn pauses(&self) -> bool;
}

/// A presenter that shows nothing and never waits (tests, the JSON output).
pub struct Silent;

impl Presenter for Silent {
    fn show(&mut self, _: &Step) -> Result<()> {
        Ok(())
    }

    fn pause(&mut self, _: &[String]) -> Result<()> {
        Ok(())
    }

    fn pauses(&self) -> bool {
        false
    }
}

/// Runs `lesson` with `options` (its own, serialised: [`Lesson::options`]), handing each
/// step to `presenter` as it is judged: a lesson that pauses while its mechanism is alive
/// ([`engine::Measure::pause`]) shows its first steps before it has finished measuring.
/// Returns the report and the recording of what was measured.
pub fn run(
    lesson: &'static Lesson,
    options: &serde_json::Value,
    presenter: &mut dyn Presenter,
) -> Result<(Report, engine::Recording)> {
    if let Support::No { reason, fix } = lesson.support() {
        return Err(Error::Unsupported { reason, fix });
    }
    // Before anything else: a run killed with SIGKILL had no chance to clean up, and the
    // next run of any lesson removes what it left.
    crate::sandbox::sweep_temp_dirs();
    let privilege = Privilege::current();
    let parts = engine::parts_for(lesson.sees, privilege);
    // /proc/1/ns is not always readable, even as root: the host's view is nsx's own.
    let env = engine::Env {
        machine: crate::report::Machine::current(),
        baseline: engine::baseline(parts)?,
    };
    let pauses = presenter.pauses();
    let measured =
        (lesson.imp.measure)(&env, privilege, options, pauses.then_some(&mut *presenter));
    crate::sandbox::reap_released();
    let (rec, shown) = measured?;
    let report = (lesson.imp.judge)(&rec)?;
    show_steps(presenter, &report.steps[shown.min(report.steps.len())..])?;
    Ok((report, rec))
}

/// Shows each step and, when the presenter pauses, waits after it (the mechanism it
/// showed is gone by now: nothing for a second terminal to look at).
fn show_steps(presenter: &mut dyn Presenter, steps: &[Step]) -> Result<()> {
    for step in steps {
        presenter.show(step)?;
        if presenter.pauses() {
            presenter.pause(&[])?;
        }
    }
    Ok(())
}

/// Renders a recorded run of `lesson` from `file`, on any machine, without privileges:
/// nothing is measured. The presenter gets each step as for a live run.
pub fn replay(
    lesson: &'static Lesson,
    file: &std::path::Path,
    presenter: &mut dyn Presenter,
) -> Result<Report> {
    let rec = engine::read_recording(file)?;
    let report = engine::mark_replay((lesson.imp.judge)(&rec)?, file, &rec);
    show_steps(presenter, &report.steps)?;
    Ok(report)
}

/// `pid:[4026531836]`, as `ls -l /proc/self/ns` shows it.
pub fn ns_label(ty: &str, inode: u64) -> String {
    format!("{ty}:[{inode}]")
}

/// One probe run: what the probe reported, what the host saw of it, and what was done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run<T, H = ()> {
    pub inside: T,
    pub host: View,
    /// Whatever else the host looked at while the probe was alive.
    pub host_extra: H,
    pub actions: Vec<String>,
    /// The probe's PID on the host.
    pub pid: i32,
}

/// Spawns a probe with `spec`, lets it run `probe`, observes it from the host while it
/// is alive (plus `host_extra`), then reaps it.
pub fn probe<T, H, F, G>(spec: &crate::sandbox::Spec, probe: F, host_extra: G) -> Result<Run<T, H>>
where
    T: Serialize + serde::de::DeserializeOwned,
    F: FnOnce(&mut crate::sandbox::Inside) -> Result<T>,
    G: FnOnce(i32) -> Result<H>,
{
    collect(crate::sandbox::spawn(spec, probe)?, host_extra)
}

/// Runs a spawned probe (or reads the report of one already told to go), observes it
/// from the host while it is alive, plus `host_extra`, and releases it.
pub(crate) fn collect<T, H>(
    mut child: crate::sandbox::Child,
    host_extra: impl FnOnce(i32) -> Result<H>,
) -> Result<Run<T, H>>
where
    T: serde::de::DeserializeOwned,
{
    let inside = child.run()?;
    let host = child.observe_from_host()?;
    let pid = child.pid();
    let host_extra = host_extra(pid)?;
    let actions = std::mem::take(&mut child.actions);
    child.release();
    Ok(Run {
        inside,
        host,
        host_extra,
        actions,
        pid,
    })
}

/// Runs one probe per spec side by side: every probe is cloned and told to go before the
/// first report is read, so one probe's clone, setup and view overlap another's and the
/// host's reading of the one before. `probe` and `host_extra` get the index of the spec
/// (and `host_extra` the probe's PID, as for [`probe`]). The runs come back in order.
///
/// Only for probes that cannot see one another: each is in namespaces of its own or
/// changes nothing the host shows. A lesson whose probe changes what the host sees (an
/// IPC object created in the host's namespace, a veth) runs that probe on its own.
pub fn probes_together<T, H, F, G>(
    specs: &[crate::sandbox::Spec],
    probe: F,
    host_extra: G,
) -> Result<Vec<Run<T, H>>>
where
    T: Serialize + serde::de::DeserializeOwned,
    F: Fn(usize, &mut crate::sandbox::Inside) -> Result<T>,
    G: Fn(usize, i32) -> Result<H>,
{
    let mut children = Vec::with_capacity(specs.len());
    for (k, spec) in specs.iter().enumerate() {
        children.push(crate::sandbox::spawn(spec, |inside| probe(k, inside))?);
    }
    for child in &mut children {
        child.go()?;
    }
    // In order; an error drops the children not yet released, which kills and reaps them.
    children
        .into_iter()
        .enumerate()
        .map(|(k, child)| collect(child, |pid| host_extra(k, pid)))
        .collect()
}

/// [`probes_together`] for a fixed number of probes, as an array to destructure.
pub fn probes_n<const N: usize, T, H, F, G>(
    specs: [crate::sandbox::Spec; N],
    probe: F,
    host_extra: G,
) -> Result<[Run<T, H>; N]>
where
    T: Serialize + serde::de::DeserializeOwned,
    F: Fn(usize, &mut crate::sandbox::Inside) -> Result<T>,
    G: Fn(usize, i32) -> Result<H>,
{
    probes_together(&specs, probe, host_extra)?
        .try_into()
        .map_err(|_| Error::Other("internal: one run per probe".into()))
}

/// "1 (PID 1)" when few enough to list, else the count.
pub fn processes_label(view: &View) -> String {
    let p = &view.processes;
    if p.count <= p.first.len() {
        let list: Vec<String> = p.first.iter().map(|n| n.to_string()).collect();
        format!("{} (PID {})", p.count, list.join(", "))
    } else {
        p.count.to_string()
    }
}

pub fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_in_curriculum_order() {
        assert_eq!(
            ids(),
            [
                "pid", "mount", "uts", "ipc", "net", "user", "cgroupns", "time", "memory", "cpu",
                "pids", "rootfs", "init", "pod", "caps", "masks", "seccomp", "cost"
            ]
        );
    }

    #[test]
    fn a_lessons_own_flag_names_its_lesson() {
        assert_eq!(flag_owner("--memory").map(|l| l.id), Some("memory"));
        assert_eq!(flag_owner("--limit").map(|l| l.id), Some("memory"));
        assert_eq!(flag_owner("--alloc").map(|l| l.id), Some("memory"));
        assert_eq!(flag_owner("--cpus").map(|l| l.id), Some("cpu"));
        assert_eq!(flag_owner("--pids").map(|l| l.id), Some("pids"));
        assert!(flag_owner("--nonsense").is_none());
        assert!(flag_owner("memory").is_none());
    }

    #[test]
    fn every_lesson_has_a_narrative() {
        for l in LESSONS {
            assert!(
                l.narrative.starts_with("# "),
                "lessons/{}.md must start with a title",
                l.id
            );
        }
    }

    #[test]
    fn userns_restrictions_are_read_from_sysctls() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("user")).unwrap();
        std::fs::create_dir_all(p.join("kernel")).unwrap();
        assert_eq!(userns_restriction_in(p), None);
        std::fs::write(
            p.join("kernel/apparmor_restrict_unprivileged_userns"),
            "1\n",
        )
        .unwrap();
        assert!(userns_restriction_in(p).unwrap().0.contains("AppArmor"));
        std::fs::write(p.join("kernel/unprivileged_userns_clone"), "0\n").unwrap();
        assert!(userns_restriction_in(p)
            .unwrap()
            .0
            .contains("unprivileged_userns_clone"));
        std::fs::write(p.join("user/max_user_namespaces"), "0\n").unwrap();
        assert!(userns_restriction_in(p)
            .unwrap()
            .0
            .contains("max_user_namespaces is 0"));
    }
}

#[cfg(test)]
mod fixture_tests;

/// The lessons a mistyped or guessed id may mean, best first: those whose words include
/// it (by meaning: `cgroups` gives memory, cpu, pids and cgroupns), then those spelled
/// within two edits of it (by spelling: `pdi` gives pid, a swap of two letters counting
/// as one edit).
pub fn suggest(word: &str) -> Vec<&'static str> {
    let w = word.to_ascii_lowercase();
    let mut out: Vec<&'static str> = LESSONS
        .iter()
        .filter(|l| l.words.iter().any(|x| *x == w))
        .map(|l| l.id)
        .collect();
    let mut close: Vec<(usize, &'static str)> = LESSONS
        .iter()
        .map(|l| (edits(&w, l.id), l.id))
        .filter(|(d, id)| *d <= 2 && *d < id.len() && !out.contains(id))
        .collect();
    close.sort();
    out.extend(close.into_iter().map(|(_, id)| id));
    out
}

/// Edits between two words (insert, delete, replace, or swap two neighbours): the
/// optimal string alignment distance.
pub(crate) fn edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod suggest_tests {
    use super::*;

    #[test]
    fn suggestions_rank_meaning_then_spelling() {
        assert_eq!(suggest("pdi").first(), Some(&"pid"));
        let cg = suggest("cgroups");
        for id in ["memory", "cpu", "pids", "cgroupns"] {
            assert!(cg.contains(&id), "{cg:?}");
        }
        assert_eq!(suggest("network").first(), Some(&"net"));
        assert!(suggest("zzzzzz").is_empty());
        assert_eq!(edits("pdi", "pid"), 1);
        assert_eq!(edits("pdi", "pids"), 2);
    }

    #[test]
    fn every_lesson_has_words_a_student_may_type() {
        for l in LESSONS {
            assert!(!l.words.is_empty(), "{} has no words", l.id);
        }
    }
}
