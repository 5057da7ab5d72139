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
pub mod tcp;
pub mod time;
pub mod user;
pub mod uts;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits::Cpus;
use crate::observe::{self, Subject, View};
use crate::report::{Fact, Privilege, Report, Step};
use crate::sandbox::signals;

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
    /// Every fact the lesson decides (lessons still on the old shape list none).
    pub facts: &'static [&'static str],
    /// Words a student may type for this lesson (`nsx lesson cgroups` suggests the
    /// lessons that carry "cgroups").
    pub words: &'static [&'static str],
    pub imp: Imp,
}

/// How a lesson runs: measure + judge ([`engine::Def`]), or the older single function
/// that measures, judges and hands steps over as it goes (being retired).
pub enum Imp {
    Old(fn(&mut Ctx) -> Result<Vec<Fact>>),
    New(engine::Erased),
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
    cost::LESSON,
];

/// Checks the limit options against what `lesson` can do (the grammar was checked when
/// parsing): a usage error (exit 2) names the accepted range.
pub fn check_options(lesson: &Lesson, options: &Options) -> Result<()> {
    match lesson.id {
        "memory" => memory::check_options(options.alloc),
        "cpu" => cpu::check_options(options.cpus),
        "pids" => pids::check_options(options.pids),
        "uts" => uts::check_options(&options.hostname),
        _ => Ok(()),
    }
}

pub fn find(id: &str) -> Option<&'static Lesson> {
    LESSONS.iter().find(|l| l.id == id)
}

pub fn ids() -> Vec<&'static str> {
    LESSONS.iter().map(|l| l.id).collect()
}

/// Options a lesson may use.
#[derive(Debug, Clone)]
pub struct Options {
    /// The hostname the uts lesson sets.
    pub hostname: String,
    /// The /30 the net lesson's veth uses (`None`: the first free one from the default).
    pub veth_net: Option<crate::sandbox::veth::Subnet30>,
    /// Whether the net lesson runs its veth step (when root).
    pub veth: bool,
    /// The memory lesson's limit, in bytes.
    pub memory: u64,
    /// How much the memory lesson's probe allocates and touches, in bytes.
    pub alloc: u64,
    /// The cpu lesson's quota.
    pub cpus: Cpus,
    /// The pids lesson's pids.max.
    pub pids: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hostname: "nsx-demo".to_string(),
            veth_net: None,
            veth: true,
            memory: memory::DEFAULT_LIMIT,
            alloc: memory::DEFAULT_ALLOC,
            cpus: cpu::DEFAULT_CPUS,
            pids: pids::DEFAULT_PIDS,
        }
    }
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
        match &self.imp {
            Imp::New(e) => (e.command)(),
            Imp::Old(_) => {
                use clap::Args;
                crate::cli::OldFlags::augment_args(clap::Command::new(self.id)).about(self.title)
            }
        }
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

/// What a lesson runs in: options, the host's own view before anything changed, and the
/// sink its steps go to.
pub struct Ctx<'a> {
    pub lesson: &'static Lesson,
    pub options: Options,
    pub privilege: Privilege,
    /// The host's view of itself, taken before the lesson created anything.
    pub baseline: View,
    steps: Vec<Step>,
    notes: Vec<String>,
    on_step: &'a mut dyn FnMut(&Step) -> Result<()>,
}

impl Ctx<'_> {
    /// Hands a finished step to the renderer (which may pause for --step).
    pub fn step(&mut self, step: Step) -> Result<()> {
        signals::check()?;
        (self.on_step)(&step)?;
        self.steps.push(step);
        Ok(())
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    pub fn rootless(&self) -> bool {
        self.privilege == Privilege::Rootless
    }
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

/// Runs `lesson`, handing each step to `presenter` as it is judged: a lesson that pauses
/// while its mechanism is alive ([`engine::Measure::pause`]) shows its first steps before
/// it has finished measuring. Returns the report, and the recording of what was measured
/// (lessons of the measure + judge shape).
pub fn run(
    lesson: &'static Lesson,
    input: Input,
    presenter: &mut dyn Presenter,
) -> Result<(Report, Option<engine::Recording>)> {
    if let Support::No { reason, fix } = lesson.support() {
        return Err(Error::Unsupported { reason, fix });
    }
    // Before anything else: a run killed with SIGKILL had no chance to clean up, and the
    // next run of any lesson removes what it left.
    crate::sandbox::sweep_temp_dirs();
    let privilege = Privilege::current();
    let (run_old, options) = match (&lesson.imp, input) {
        (Imp::Old(run), Input::Old(options)) => (*run, options),
        (Imp::Old(_), Input::New(_)) | (Imp::New(_), Input::Old(_)) => {
            return Err(Error::Other(format!(
                "internal: options of the wrong shape for the {} lesson",
                lesson.id
            )))
        }
        (Imp::New(e), Input::New(options)) => {
            let parts = engine::parts_for(lesson.sees, privilege);
            let env = engine::Env {
                machine: crate::report::Machine::current(),
                baseline: engine::baseline(parts)?,
            };
            let pauses = presenter.pauses();
            let measured =
                (e.measure)(&env, privilege, &options, pauses.then_some(&mut *presenter));
            crate::sandbox::reap_released();
            let (rec, shown) = measured?;
            let report = (e.judge)(&rec)?;
            show_steps(presenter, &report.steps[shown.min(report.steps.len())..])?;
            return Ok((report, Some(rec)));
        }
    };
    // Without root the sandbox adds a user namespace to every probe, and the output says
    // so: the views then show it too (its link and the id maps nsx wrote).
    observe::set_scope(match privilege {
        Privilege::Rootless => lesson
            .sees
            .with(observe::Parts::ns("user"))
            .with(observe::Parts::ID_MAPS),
        _ => lesson.sees,
    });
    // /proc/1/ns is not always readable, even as root: the host's view is nsx's own.
    let baseline = observe::observe(std::path::Path::new("/proc"), Subject::SelfProcess)?;
    let mut on_step = |step: &Step| show_steps(presenter, std::slice::from_ref(step));
    let mut ctx = Ctx {
        lesson,
        options,
        privilege,
        baseline,
        steps: Vec::new(),
        notes: Vec::new(),
        on_step: &mut on_step,
    };
    if ctx.rootless() {
        ctx.note(format!(
            "nsx is not running as root (uid {}): it added a user namespace (CLONE_NEWUSER) and mapped your uid to 0 inside, which is what lets an unprivileged user create the other namespaces",
            nix::unistd::getuid()
        ));
    }
    let facts = run_old(&mut ctx);
    crate::sandbox::reap_released();
    // A fact whose measurement was starved (Fact::inconclusive) is reported apart: no
    // failure, no pass; `ok` is about the facts this run decided.
    let (facts, inconclusive): (Vec<Fact>, Vec<Fact>) =
        facts?.into_iter().partition(|f| f.inconclusive.is_none());
    let ok = !facts.is_empty() && facts.iter().all(|f| f.holds);
    Ok((
        Report {
            lesson: lesson.id.to_string(),
            title: lesson.title.to_string(),
            mechanism: lesson.mechanism.to_string(),
            ok,
            privilege,
            notes: ctx.notes,
            steps: ctx.steps,
            facts,
            inconclusive,
            takeaway: None,
            machine: None,
            replay: None,
        },
        None,
    ))
}

/// A lesson's options: the shared struct of the older lessons, or a measure + judge
/// lesson's own options, serialised ([`engine::Def::Options`]).
pub enum Input {
    Old(Options),
    New(serde_json::Value),
}

impl Input {
    /// The options a lesson runs with when none are given (the tour).
    pub fn defaults(lesson: &Lesson) -> Result<Input> {
        match &lesson.imp {
            Imp::Old(_) => Ok(Input::Old(Options::default())),
            Imp::New(e) => Ok(Input::New((e.options)(None)?)),
        }
    }

    /// The options given to `lesson`'s subcommand.
    pub fn from_matches(lesson: &Lesson, matches: &clap::ArgMatches) -> Result<Input> {
        use clap::FromArgMatches;
        match &lesson.imp {
            Imp::New(e) => Ok(Input::New((e.options)(Some(matches))?)),
            Imp::Old(_) => {
                let flags = crate::cli::OldFlags::from_arg_matches(matches)
                    .map_err(|e| Error::Usage(e.to_string()))?;
                // A limit flag for another lesson would be silently ignored: refuse it.
                for (flag, owner) in flags.limit_flags() {
                    if owner != lesson.id {
                        return Err(Error::Usage(format!(
                            "{flag} belongs to the {owner} lesson (nsx lesson {owner} {flag} ...), not to {}",
                            lesson.id
                        )));
                    }
                }
                let defaults = Options::default();
                let options = Options {
                    hostname: flags.hostname.clone(),
                    veth_net: flags.veth_net,
                    veth: !flags.no_veth,
                    memory: flags.memory.unwrap_or(defaults.memory),
                    alloc: flags.alloc.unwrap_or(defaults.alloc),
                    cpus: flags.cpus.unwrap_or(defaults.cpus),
                    pids: flags.pids.unwrap_or(defaults.pids),
                };
                check_options(lesson, &options)?;
                Ok(Input::Old(options))
            }
        }
    }
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
    let Imp::New(e) = &lesson.imp else {
        return Err(Error::Usage(format!(
            "the {} lesson cannot be recorded or replayed yet",
            lesson.id
        )));
    };
    let rec = engine::read_recording(file)?;
    let report = engine::mark_replay((e.judge)(&rec)?, file, &rec);
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
                "pids", "rootfs", "init", "pod", "caps", "masks", "cost"
            ]
        );
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
fn edits(a: &str, b: &str) -> usize {
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
