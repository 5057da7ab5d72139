//! A lesson is `measure` + `judge`.
//!
//! `measure` is the only part that clones, mounts or writes cgroup files: it runs the
//! probes and returns the lesson's observations, a serde value holding everything the
//! lesson will show or judge. `judge` is a pure function from those observations (and the
//! machine they were made on) to steps, rows, notes and facts. The seam is what makes a
//! run recordable (`--record FILE`), replayable anywhere without privileges (`--replay
//! FILE`), and every fact testable without root from recorded runs, holding and failing.
//!
//! A lesson implements [`Def`]; [`lesson`] turns it into the registry's [`Lesson`] value,
//! whose function pointers hide the lesson's own types.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Lesson, Presenter, Rootless, Run};
use crate::error::{op, Context, Error, Result};
use crate::observe::{self, Parts, Subject, View};
use crate::report::{Fact, Machine, Privilege, Replay, Report, Step};
use crate::sandbox::{signals, Exit, Inside, Outcome, Spec};

/// One lesson: its registry entry (constants) and its two halves.
pub trait Def: 'static {
    const ID: &'static str;
    const TITLE: &'static str;
    const MECHANISM: &'static str;
    /// The man pages to read next.
    const MAN: &'static str;
    const ROOTLESS: Rootless;
    /// lessons/<id>.md, shown by --explain and included by the book.
    const NARRATIVE: &'static str;
    /// What its views read: what its rows and facts show, nothing more.
    const SEES: Parts;
    /// Every fact `judge` decides, in the order it lists them.
    const FACTS: &'static [&'static str];
    /// Words a student may type for this lesson, besides its id (for suggestions).
    const WORDS: &'static [&'static str];

    /// The lesson's own options: its `nsx lesson <id>` flags ([`NoOptions`] for none).
    type Options: clap::Args + Serialize + DeserializeOwned + Clone + std::fmt::Debug;

    /// The observations: everything the lesson shows or judges.
    type Obs: Serialize + DeserializeOwned;

    /// Checks options the flag grammar accepted against what this lesson can do: a usage
    /// error (exit 2) names the accepted range.
    fn check(_options: &Self::Options) -> Result<()> {
        Ok(())
    }

    /// Runs the probes and reads what they and the host see.
    fn measure(m: &mut Measure, options: &Self::Options) -> Result<Self::Obs>;

    /// Turns observations into what the student reads: pure, no system calls.
    fn judge(obs: &Self::Obs, options: &Self::Options, env: &Env) -> Judged;

    /// For the tests: changes to a holding recording, each of which must make the named
    /// fact fail (every fact needs at least one; see `falsify` in lessons/tests.rs).
    #[cfg(test)]
    fn falsifiers() -> Vec<Falsifier<Self::Obs>>;
}

/// The options of a lesson that has none.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
pub struct NoOptions {}

/// What judging one falsified recording gave: the fact, what was changed, and whether
/// the fact still held (it must not).
#[cfg(test)]
pub type Falsified = (&'static str, &'static str, bool);

/// A minimal change to a recorded run that must make fact `fact` fail.
#[cfg(test)]
pub struct Falsifier<O> {
    pub fact: &'static str,
    /// What the change stands for, for the failure message.
    pub what: &'static str,
    pub change: fn(&mut O, &mut Env),
}

/// What a judge knows besides the observations: where they were made, and the host's
/// own view taken before the lesson created anything.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Env {
    pub machine: Machine,
    /// nsx's own /proc/self before the lesson began: the host's own world.
    pub baseline: View,
}

impl Env {
    pub fn rootless(&self) -> bool {
        self.machine.privilege == Privilege::Rootless
    }
}

/// What a judge returns.
#[derive(Debug, Default)]
pub struct Judged {
    pub steps: Vec<Step>,
    pub facts: Vec<Fact>,
    pub notes: Vec<String>,
    /// The lesson's point in one sentence, from this run's facts.
    pub takeaway: Option<String>,
}

/// A run as `--record` writes it: the observations, with where and how they were made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recording {
    /// The nsx version that measured.
    pub nsx: String,
    pub lesson: String,
    /// The lesson's options for this run ([`Def::Options`]).
    pub options: Value,
    pub env: Env,
    /// What `measure` noted about its own work (leftovers of killed runs it removed).
    #[serde(default)]
    pub notes: Vec<String>,
    /// The lesson's own observations ([`Def::Obs`]).
    pub observations: Value,
}

/// What [`Measure::pause`] calls: the observations so far, and the commands to look.
type PauseFn<'a> = dyn FnMut(Value, &[String]) -> Result<()> + 'a;

/// What the erased measuring half returns: the recording, and how many of its steps
/// the presenter was shown at pauses.
pub type Measured = (Recording, usize);

/// The erased measuring half.
pub type MeasureFn = fn(&Env, Privilege, &Value, Option<&mut dyn Presenter>) -> Result<Measured>;

/// The measuring side's context: what a lesson's `measure` may use.
pub struct Measure<'a> {
    pub privilege: Privilege,
    /// The host's own view before the lesson began (nsx's /proc/self).
    pub baseline: &'a View,
    /// What every view of this lesson reads.
    pub parts: Parts,
    notes: Vec<String>,
    /// With --step: judges the observations so far, shows the steps not yet shown and
    /// waits ([`Measure::pause`]).
    pause: Option<&'a mut PauseFn<'a>>,
}

impl Measure<'_> {
    /// A step's observations are complete and its mechanism (its probe, its cgroup, its
    /// veth) still exists: with --step, nsx shows each step judged from `so_far` that it
    /// has not shown yet, waiting after each and printing `look`: commands a second
    /// terminal can run to see the mechanism now. `so_far` is the lesson's observations,
    /// with the later steps not yet made (`None`) when it pauses midway, so its judge
    /// must show the steps it can. Without --step, nothing.
    pub fn pause<O: Serialize>(&mut self, so_far: &O, look: &[String]) -> Result<()> {
        let Some(pause) = self.pause.as_mut() else {
            return Ok(());
        };
        let value = serde_json::to_value(so_far)
            .map_err(|e| Error::Internal(format!("observations not serialisable: {e}")))?;
        pause(value, look)
    }

    /// Whether a presenter waits at [`Measure::pause`] (so a lesson may skip building
    /// the commands otherwise).
    pub fn pauses(&self) -> bool {
        self.pause.is_some()
    }

    /// A note about the measurement itself, kept in the recording.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    pub fn rootless(&self) -> bool {
        self.privilege == Privilege::Rootless
    }

    /// `spec` reading what this lesson reads.
    fn scoped(&self, spec: &Spec) -> Spec {
        Spec {
            parts: self.parts,
            ..spec.clone()
        }
    }

    /// Runs one probe: see [`super::probe`].
    pub fn probe<T, H, F, G>(&self, spec: &Spec, probe: F, host_extra: G) -> Result<Run<T, H>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(&mut Inside) -> Result<T>,
        G: FnOnce(i32) -> Result<H>,
    {
        super::probe(&self.scoped(spec), probe, host_extra)
    }

    /// Runs probes side by side: see [`super::probes_n`].
    pub fn probes_n<const N: usize, T, H, F, G>(
        &self,
        specs: [Spec; N],
        probe: F,
        host_extra: G,
    ) -> Result<[Run<T, H>; N]>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(usize, &mut Inside) -> Result<T>,
        G: Fn(usize, i32) -> Result<H>,
    {
        super::probes_n(specs.map(|s| self.scoped(&s)), probe, host_extra)
    }

    /// Runs one probe, with `prepare` between its clone and its go: the probe exists but
    /// waits, so the host can move it into a cgroup or write its time offsets before it
    /// runs a single instruction of its own.
    pub fn probe_with<T, H, P, F, G>(
        &self,
        spec: &Spec,
        prepare: P,
        probe: F,
        host_extra: G,
    ) -> Result<Run<T, H>>
    where
        T: Serialize + DeserializeOwned,
        P: FnOnce(&mut Prep) -> Result<()>,
        F: FnOnce(&mut Inside) -> Result<T>,
        G: FnOnce(i32) -> Result<H>,
    {
        let mut child = crate::sandbox::spawn(&self.scoped(spec), probe)?;
        prepare(&mut Prep { child: &mut child })?;
        super::collect(child, host_extra)
    }

    /// Runs one probe as [`Measure::probe`] does, then releases it and waits for it to
    /// exit: how it ended comes back with the run. For a lesson whose host ends the probe
    /// itself (`host_extra` may signal it: the probe is nsx's unreaped child, so its PID
    /// cannot have been reused meanwhile), or watches what its exit does.
    pub fn probe_to_exit<T, H, F, G>(
        &self,
        spec: &Spec,
        probe: F,
        host_extra: G,
    ) -> Result<(Run<T, H>, Exit)>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(&mut Inside) -> Result<T>,
        G: FnOnce(i32) -> Result<H>,
    {
        let mut child = crate::sandbox::spawn(&self.scoped(spec), probe)?;
        let inside = child.run()?;
        let host = child.observe_from_host()?;
        let pid = child.pid();
        let host_extra = host_extra(pid)?;
        let actions = std::mem::take(&mut child.actions);
        let status = child.finish()?;
        let run = Run {
            inside,
            host,
            host_extra,
            actions,
            pid,
        };
        Ok((run, Exit::from(status)))
    }

    /// Runs one probe that needs the host once, midway: the probe calls [`Midway::ask`]
    /// when it has reached a state only the host can act on (it unshared a user namespace
    /// of its own, and its maps must be written from the parent namespace by a setuid
    /// newuidmap(1)); `midway` runs then, and the probe goes on when it returns. A probe
    /// that ends or fails before asking is collected as usual, and `midway` never runs.
    pub fn probe_midway<T, H, M, F, G>(
        &self,
        spec: &Spec,
        probe: F,
        midway: M,
        host_extra: G,
    ) -> Result<Run<T, H>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(&mut Inside, &mut Midway) -> Result<T>,
        M: FnOnce(&mut Prep) -> Result<()>,
        G: FnOnce(i32) -> Result<H>,
    {
        use std::os::fd::AsRawFd;
        // pipe(7), close-on-exec: the probe's request, and the host's answer.
        let (ask_r, ask_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("pipe2", "midway request")?;
        let (done_r, done_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("pipe2", "midway answer")?;
        let host_ends = [ask_r.as_raw_fd(), done_w.as_raw_fd()];
        let mut child = crate::sandbox::spawn(&self.scoped(spec), move |inside| {
            for fd in host_ends {
                // The clone copied nsx's ends of both pipes. Closed here, a probe whose
                // host died reads EOF instead of waiting on its own copy of the answer.
                // SAFETY: these descriptors are this process's copies of nsx's pipe ends,
                // which nothing in the probe uses; the OwnedFds that own them in nsx's
                // frame are never dropped here (a probe leaves through _exit).
                unsafe { libc::close(fd) };
            }
            let mut mid = Midway {
                ask: std::fs::File::from(ask_w),
                done: std::fs::File::from(done_r),
            };
            probe(inside, &mut mid)
        })?;
        // Here the closure, and the probe's ends with it, went when spawn returned: EOF on
        // the request means the probe ended (or failed) without asking.
        let mut ask = std::fs::File::from(ask_r);
        let mut done = std::fs::File::from(done_w);
        child.go()?;
        let mut host_actions = Vec::new();
        if read_byte(&mut ask, "the probe's midway request")? {
            let before = child.actions.len();
            midway(&mut Prep { child: &mut child })?;
            host_actions = child.actions.split_off(before);
            write_byte(&mut done, "the probe's midway answer")?;
        }
        drop((ask, done));
        let mut run = super::collect(child, host_extra)?;
        // The host's actions go where the probe asked, among the probe's own.
        match run.actions.iter().position(|a| a == MIDWAY_MARK) {
            Some(i) => {
                run.actions.splice(i..=i, host_actions);
            }
            None => run.actions.extend(host_actions),
        }
        Ok(run)
    }

    /// Starts a probe that runs alongside the host and outlives its report: `prepare`
    /// runs between its clone and its go (as for [`Measure::probe_with`]), then the probe
    /// is told to go at once, so the host can take part in what it does (answer its
    /// connection, wait for its listener) before it reads the report
    /// ([`Running::report`]). The probe stays alive until [`Running::finish`] (or the
    /// [`Running`] is dropped, which kills and reaps it): a holder whose namespaces others
    /// join, a server, a probe the host looks at again after changing something.
    pub fn start<T, P, F>(&self, spec: &Spec, prepare: P, probe: F) -> Result<Running<T>>
    where
        T: Serialize + DeserializeOwned,
        P: FnOnce(&mut Prep) -> Result<()>,
        F: FnOnce(&mut Inside) -> Result<T>,
    {
        let mut child = crate::sandbox::spawn(&self.scoped(spec), probe)?;
        prepare(&mut Prep { child: &mut child })?;
        child.go()?;
        Ok(Running {
            child,
            report: std::marker::PhantomData,
        })
    }

    /// Runs one probe to its end, for a probe that may die before it reports (OOM-killed,
    /// killed by a signal): `prepare` between its clone and its go, as for
    /// [`Measure::probe_with`]; `probe` gets a [`SideWriter`] for what it must say before
    /// it might die (its view, its progress). The host reads the probe (and calls
    /// `host_extra`) while it lives after its report, or, when it died first, once it is
    /// dead; its view of the probe is then the one taken just before the probe ran. The
    /// probe is reaped before this returns: [`Ended::exit`] is its wait status, and what
    /// the lesson looks at next happens after waitpid(2) returned.
    pub fn probe_to_end<T, H, P, F, G>(
        &self,
        spec: &Spec,
        prepare: P,
        probe: F,
        host_extra: G,
    ) -> Result<Ended<T, H>>
    where
        T: Serialize + DeserializeOwned,
        P: FnOnce(&mut Prep) -> Result<()>,
        F: FnOnce(&mut Inside, SideWriter) -> Result<T>,
        G: FnOnce(i32) -> Result<H>,
    {
        let (side, writer) = side_pipe()?;
        // The parent's copy of the writer goes with the closure when spawn returns, so the
        // side pipe reaches EOF once the probe has exited.
        let mut child = crate::sandbox::spawn(&self.scoped(spec), move |i| probe(i, writer))?;
        prepare(&mut Prep { child: &mut child })?;
        // Taken while it is held: if it dies before its report, this is what the host saw.
        let held = child.observe_from_host()?;
        let pid = child.pid();
        let (inside, host, host_after, host_extra, actions, exit) =
            match child.run_or_exit::<T>()? {
                Outcome::Reported(value) => {
                    // It waits for its release: alive, holding whatever it made.
                    let host = child.observe_from_host()?;
                    let extra = host_extra(pid)?;
                    let actions = std::mem::take(&mut child.actions);
                    let exit = child.finish()?;
                    (Some(value), host, true, extra, actions, exit)
                }
                Outcome::Exited(status) => {
                    // Reaped already by run_or_exit: dropping the child kills nothing.
                    let extra = host_extra(pid)?;
                    let actions = std::mem::take(&mut child.actions);
                    drop(child);
                    (None, held, false, extra, actions, status)
                }
            };
        let said = String::from_utf8_lossy(&side.read_all()?).into_owned();
        Ok(Ended {
            inside,
            said,
            host,
            host_after,
            host_extra,
            actions,
            pid,
            exit: Exit::from(exit),
        })
    }

    /// Clones a probe held before it runs, for a lesson that prepares it first (see
    /// [`crate::sandbox::spawn`]).
    pub fn spawn<T, F>(&self, spec: &Spec, probe: F) -> Result<crate::sandbox::Child>
    where
        T: Serialize,
        F: FnOnce(&mut Inside) -> Result<T>,
    {
        crate::sandbox::spawn(&self.scoped(spec), probe)
    }
}

/// A probe between its clone and its go ([`Measure::probe_with`]).
pub struct Prep<'c> {
    child: &'c mut crate::sandbox::Child,
}

impl Prep<'_> {
    /// The probe's PID on the host.
    pub fn pid(&self) -> i32 {
        self.child.pid()
    }

    /// Records something the host did for the probe, in the step's actions.
    pub fn action(&mut self, text: impl Into<String>) {
        self.child.actions.push(text.into());
    }

    /// What the host sees of the probe now, before it runs.
    pub fn observe(&self) -> Result<View> {
        self.child.observe_from_host()
    }
}

/// Where, among a probe's actions, the host acted midway (replaced by what it did).
const MIDWAY_MARK: &str = "\u{0}midway";

/// The probe's side of [`Measure::probe_midway`].
pub struct Midway {
    ask: std::fs::File,
    done: std::fs::File,
}

impl Midway {
    /// Asks the host to act now, and waits until it has.
    pub fn ask(&mut self, inside: &mut Inside) -> Result<()> {
        inside.action(MIDWAY_MARK);
        write_byte(&mut self.ask, "the midway request")?;
        if read_byte(&mut self.done, "the host's midway answer")? {
            Ok(())
        } else {
            Err(Error::Other(
                "the host did not answer the probe's midway request".into(),
            ))
        }
    }
}

/// One byte from a pipe: `false` at EOF (the writer closed its end). An interrupted read
/// is retried unless nsx was told to stop.
fn read_byte(f: &mut std::fs::File, what: &str) -> Result<bool> {
    use std::io::Read;
    let mut byte = [0u8; 1];
    loop {
        match f.read(&mut byte) {
            Ok(n) => return Ok(n == 1),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                crate::sandbox::signals::check()?
            }
            Err(e) => return Err(e).ctx(op::READ, what),
        }
    }
}

fn write_byte(f: &mut std::fs::File, what: &str) -> Result<()> {
    use std::io::Write;
    loop {
        match f.write(b"m") {
            // EPIPE (nsx ignores SIGPIPE): the reader is gone, and what became of it is
            // for the one who collects it to say.
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).ctx(op::WRITE, what),
        }
    }
}

/// A probe started with [`Measure::start`]: told to go, alive until finished.
pub struct Running<T> {
    child: crate::sandbox::Child,
    report: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Running<T> {
    /// The probe's PID on the host.
    pub fn pid(&self) -> i32 {
        self.child.pid()
    }

    /// What the host sees of the probe now.
    pub fn observe(&self) -> Result<View> {
        self.child.observe_from_host()
    }

    /// Waits for the probe's report, then reads what the host sees of it and
    /// `host_extra`, while it is still alive: the run so far (its actions up to now).
    /// Call it once.
    pub fn report<H>(&mut self, host_extra: impl FnOnce(i32) -> Result<H>) -> Result<Run<T, H>> {
        let inside = self.child.run()?;
        let host = self.child.observe_from_host()?;
        let pid = self.child.pid();
        let host_extra = host_extra(pid)?;
        Ok(Run {
            inside,
            host,
            host_extra,
            actions: std::mem::take(&mut self.child.actions),
            pid,
        })
    }

    /// Lets the probe exit and reaps it: how it ended.
    pub fn finish(self) -> Result<crate::sandbox::Exit> {
        Ok(self.child.finish()?.into())
    }
}

/// A probe run to its end ([`Measure::probe_to_end`]): its report if it made one, what
/// it said before it ended, what the host saw, and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ended<T, H = ()> {
    /// Its report; `None` when it died first.
    pub inside: Option<T>,
    /// What it wrote on its side pipe before it ended ([`SideWriter`]).
    pub said: String,
    /// What the host saw of it: while it lived after its report, or, when it died first,
    /// just before it ran (held after its clone): see `host_after`.
    pub host: View,
    /// Whether `host` was read after the probe's report (false: before it ran).
    pub host_after: bool,
    /// Whatever else the host read while the probe lived after its report, or once it
    /// had died.
    pub host_extra: H,
    /// What was done, parent and probe side; a probe that died reported none of its own.
    pub actions: Vec<String>,
    /// The probe's PID on the host.
    pub pid: i32,
    /// How it ended (waitpid(2)).
    pub exit: Exit,
}

/// A pipe the probe writes to *while* it runs, for what it must say before it might be
/// killed (its own view, its progress). The probe's normal report comes only at its end;
/// a probe killed by the OOM killer never sends one.
///
/// The parent reads it after the probe has ended, so the probe must never write more
/// than a pipe holds (64 KiB by default, pipe(7)) or it would block; [`SideWriter`]
/// refuses to.
pub struct SidePipe {
    reader: File,
}

/// The probe's end of a [`SidePipe`].
pub struct SideWriter {
    file: File,
    written: usize,
}

/// At most this much goes into a side pipe: under the 64 KiB a pipe buffers.
pub const SIDE_CAPACITY: usize = 60 * 1024;

/// A side pipe: the parent keeps the returned reader, the probe closure takes the writer
/// (the parent's copy of it closes when `spawn` drops the closure, so the reader sees EOF
/// once the probe is gone).
pub fn side_pipe() -> Result<(SidePipe, SideWriter)> {
    // pipe2(2) with O_CLOEXEC: nsx never execs, but the flag keeps it out of anything that
    // ever would.
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("pipe2", "side channel")?;
    Ok((
        SidePipe {
            reader: File::from(r),
        },
        SideWriter {
            file: File::from(w),
            written: 0,
        },
    ))
}

impl SideWriter {
    /// Writes `bytes` unless that would go past [`SIDE_CAPACITY`]; `false` if refused.
    pub fn send(&mut self, bytes: &[u8]) -> bool {
        if self.written + bytes.len() > SIDE_CAPACITY {
            return false;
        }
        if self.file.write_all(bytes).is_err() {
            return false;
        }
        self.written += bytes.len();
        true
    }

    /// One JSON value on its own line.
    pub fn send_json<T: Serialize>(&mut self, value: &T) -> bool {
        match serde_json::to_vec(value) {
            Ok(mut line) => {
                line.push(b'\n');
                self.send(&line)
            }
            Err(_) => false,
        }
    }
}

impl SidePipe {
    /// Everything the probe wrote, once it has ended (reads to EOF).
    pub fn read_all(mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        loop {
            match self.reader.read_to_end(&mut buf) {
                Ok(_) => return Ok(buf),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => signals::check()?,
                Err(e) => return Err(e).ctx(op::READ, "the probe's side channel"),
            }
        }
    }
}

/// The type-erased halves of a [`Def`], stored in the registry.
#[derive(Clone, Copy)]
pub struct Erased {
    /// The lesson's `nsx lesson <id>` subcommand, with its options.
    pub command: fn() -> clap::Command,
    /// Its options from the subcommand's matches (`None`: the defaults), checked.
    pub options: fn(Option<&clap::ArgMatches>) -> Result<Value>,
    /// Measures with the options given, then returns the recording and how many of its
    /// steps the presenter was already shown at pauses.
    pub measure: MeasureFn,
    /// Judges a recording into a report.
    pub judge: fn(&Recording) -> Result<Report>,
    /// For the tests: judges each falsified copy of `recording`, returning (fact,
    /// what changed, holds after the change) per falsifier.
    #[cfg(test)]
    pub falsify: fn(&Recording) -> Result<Vec<Falsified>>,
}

/// The registry entry for `L`.
pub const fn lesson<L: Def>() -> Lesson {
    Lesson {
        id: L::ID,
        title: L::TITLE,
        mechanism: L::MECHANISM,
        man: L::MAN,
        rootless: L::ROOTLESS,
        narrative: L::NARRATIVE,
        sees: L::SEES,
        facts: L::FACTS,
        words: L::WORDS,
        imp: Erased {
            command: command::<L>,
            options: options::<L>,
            measure: measure::<L>,
            judge: judge::<L>,
            #[cfg(test)]
            falsify: falsify::<L>,
        },
    }
}

/// What the views of a lesson read: its own parts, and without root the user namespace
/// the sandbox adds and the id maps nsx wrote (the output shows them).
pub fn parts_for(sees: Parts, privilege: Privilege) -> Parts {
    match privilege {
        Privilege::Rootless => sees.with(observe::Ns::User.part()).with(Parts::ID_MAPS),
        Privilege::Root => sees,
    }
}

/// The host's own view before a lesson: nsx's /proc/self (/proc/1/ns is not always
/// readable, even as root). Without the processes of nsx's own PID namespace: on the
/// host that is every process of the machine, which no lesson compares and no recording
/// should carry.
pub fn baseline(parts: Parts) -> Result<View> {
    let parts = parts.without(Parts::NS_PROCESSES);
    observe::observe_parts(Path::new("/proc"), Subject::SelfProcess, parts)
}

fn command<L: Def>() -> clap::Command {
    use clap::Args;
    // The title after the options: a derived Args sets its own doc comment as about.
    L::Options::augment_args(clap::Command::new(L::ID)).about(L::TITLE)
}

fn options<L: Def>(matches: Option<&clap::ArgMatches>) -> Result<Value> {
    use clap::FromArgMatches;
    let defaults;
    let matches = match matches {
        Some(m) => m,
        None => {
            defaults = command::<L>()
                .try_get_matches_from([L::ID])
                .map_err(|e| Error::Internal(format!("{} defaults: {e}", L::ID)))?;
            &defaults
        }
    };
    let options = L::Options::from_arg_matches(matches).map_err(|e| Error::Usage(e.to_string()))?;
    L::check(&options)?;
    serde_json::to_value(&options)
        .map_err(|e| Error::Internal(format!("options not serialisable: {e}")))
}

fn typed_options<L: Def>(value: &Value) -> Result<L::Options> {
    serde_json::from_value(value.clone()).map_err(|e| {
        Error::Usage(format!(
            "the {} lesson's options do not fit this nsx ({e})",
            L::ID
        ))
    })
}

fn measure<L: Def>(
    env: &Env,
    privilege: Privilege,
    options: &Value,
    presenter: Option<&mut dyn Presenter>,
) -> Result<Measured> {
    let typed = typed_options::<L>(options)?;
    let mut shown = 0;
    let mut show_so_far = presenter.map(|p| {
        let (typed, shown) = (&typed, &mut shown);
        move |so_far: Value, look: &[String]| -> Result<()> {
            let obs: L::Obs = serde_json::from_value(so_far)
                .map_err(|e| Error::Internal(format!("{} observations so far: {e}", L::ID)))?;
            // Each step not shown yet, one at a time, with a pause after each: the
            // mechanism is alive through all of them.
            let judged = L::judge(&obs, typed, env);
            for step in judged.steps.iter().skip(*shown) {
                p.show(step)?;
                *shown += 1;
                p.pause(look)?;
            }
            Ok(())
        }
    });
    let mut m = Measure {
        privilege,
        baseline: &env.baseline,
        parts: parts_for(L::SEES, privilege),
        notes: Vec::new(),
        pause: show_so_far.as_mut().map(|f| f as &mut PauseFn),
    };
    let obs = L::measure(&mut m, &typed)?;
    let notes = std::mem::take(&mut m.notes);
    drop(m);
    let rec = Recording {
        nsx: env!("CARGO_PKG_VERSION").to_string(),
        lesson: L::ID.to_string(),
        options: options.clone(),
        env: env.clone(),
        notes,
        observations: serde_json::to_value(&obs)
            .map_err(|e| Error::Internal(format!("observations not serialisable: {e}")))?,
    };
    Ok((rec, shown))
}

fn observations<L: Def>(rec: &Recording) -> Result<L::Obs> {
    if rec.lesson != L::ID {
        return Err(Error::Usage(format!(
            "the recording is of the {} lesson, not {}",
            rec.lesson,
            L::ID
        )));
    }
    serde_json::from_value(rec.observations.clone()).map_err(|e| {
        Error::Usage(format!(
            "the recording's observations do not fit this nsx's {} lesson ({e}); it was recorded by nsx {}: record it again with this version",
            L::ID, rec.nsx
        ))
    })
}

fn judge<L: Def>(rec: &Recording) -> Result<Report> {
    let obs = observations::<L>(rec)?;
    let options = typed_options::<L>(&rec.options)?;
    Ok(report::<L>(rec, L::judge(&obs, &options, &rec.env)))
}

/// Puts a judgement into the report shape: decided and inconclusive facts apart, the run's
/// notes first.
pub fn report<L: Def>(rec: &Recording, judged: Judged) -> Report {
    let (facts, inconclusive): (Vec<Fact>, Vec<Fact>) = judged
        .facts
        .into_iter()
        .partition(|f| f.inconclusive.is_none());
    let ok = !facts.is_empty() && facts.iter().all(|f| f.holds);
    let mut notes = rec.notes.clone();
    if rec.env.rootless() {
        notes.push(format!(
            "nsx is not running as root (uid {}): it added a user namespace (CLONE_NEWUSER) and mapped your uid to 0 inside, which is what lets an unprivileged user create the other namespaces",
            rec.env.machine.uid
        ));
    }
    notes.extend(judged.notes);
    Report {
        lesson: L::ID.to_string(),
        title: L::TITLE.to_string(),
        mechanism: L::MECHANISM.to_string(),
        ok,
        privilege: rec.env.machine.privilege,
        notes,
        steps: judged.steps,
        facts,
        inconclusive,
        takeaway: judged.takeaway,
        machine: Some(rec.env.machine.clone()),
        replay: None,
    }
}

#[cfg(test)]
fn falsify<L: Def>(rec: &Recording) -> Result<Vec<Falsified>> {
    let mut out = Vec::new();
    let options = typed_options::<L>(&rec.options)?;
    for f in L::falsifiers() {
        let mut obs = observations::<L>(rec)?;
        let mut env = rec.env.clone();
        (f.change)(&mut obs, &mut env);
        let judged = L::judge(&obs, &options, &env);
        let holds = judged
            .facts
            .iter()
            .find(|x| x.id == f.fact)
            .map(|x| x.holds && x.inconclusive.is_none())
            .ok_or_else(|| Error::Other(format!("falsifier names unknown fact {}", f.fact)))?;
        out.push((f.fact, f.what, holds));
    }
    Ok(out)
}

/// Reads a recording written by `--record`.
pub fn read_recording(path: &Path) -> Result<Recording> {
    let bytes = std::fs::read(path).map_err(|e| crate::error::io("read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::Usage(format!(
            "{} is not an nsx recording ({e}); make one with nsx lesson ID --record FILE",
            path.display()
        ))
    })
}

/// Writes a recording to a new file: refused if `path` exists (O_CREAT|O_EXCL never
/// follows a symlink either), so a planted link cannot redirect it.
pub fn write_recording(path: &Path, rec: &Recording) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Usage(format!(
                "--record {}: the file exists; nsx never overwrites (remove it or choose another name)",
                path.display()
            )),
            _ => crate::error::io("create", path, e),
        })?;
    let mut bytes = serde_json::to_vec_pretty(rec)
        .map_err(|e| Error::Internal(format!("recording not serialisable: {e}")))?;
    bytes.push(b'\n');
    f.write_all(&bytes)
        .map_err(|e| crate::error::io("write", path, e))
}

/// Marks a report as replayed from `file`.
pub fn mark_replay(mut report: Report, file: &Path, rec: &Recording) -> Report {
    report.replay = Some(Replay {
        file: file.display().to_string(),
        recorded_by: rec.nsx.clone(),
    });
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_side_channel_refuses_what_a_pipe_cannot_hold() {
        let (pipe, mut w) = side_pipe().unwrap();
        assert!(w.send_json(&serde_json::json!({"a": 1})));
        assert!(!w.send(&vec![b'.'; SIDE_CAPACITY]));
        assert!(w.send(b"."));
        drop(w);
        assert_eq!(pipe.read_all().unwrap(), b"{\"a\":1}\n.");
    }
}
