//! seccomp: a filter on the system calls themselves.
//!
//! seccomp(2): a process in filter mode runs a BPF program on every system call it makes,
//! before the kernel does anything else; the program answers allow, fail with an errno of
//! its choice, or kill. Filters are kept across fork(2) and execve(2) and never removed.
//! The host reads the mode and the number of filters in /proc/<pid>/status (`Seccomp: 2`,
//! `Seccomp_filters`).
//!
//! The lesson builds its filters with seccompiler from profiles in Docker's JSON format
//! (crate::security::seccomp), as `nsx run` does:
//! - `before`: no filter; four harmless calls all succeed.
//! - `filter`: a profile that makes uname(2) fail with EPERM, sysinfo(2) with ENOSYS and
//!   getppid(2) kill its caller; getpid(2) still works. Each call is made in a child of
//!   the probe (it inherits the filter), so the kill ends the child, not the probe.
//! - `nnp`: without CAP_SYS_ADMIN, seccomp(2) refuses a filter (EACCES) until the process
//!   has set no_new_privs.
//! - `docker`: nsx's default profile (Docker's default in effect) on a probe with Docker's
//!   default capabilities, beside the same probe without it: unshare, keyctl and mount
//!   fail under the profile; without it, keyctl and a user namespace need no capability
//!   at all, and mount is refused by the capabilities alone.

use std::path::PathBuf;

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure};
use super::kit::{self, StepExt};
use super::{Lesson, Rootless, Run};
use crate::error::{Error, Result};
use crate::observe::{Parts, View};
use crate::report::{Fact, Row, Step, Val};
use crate::sandbox::{Inside, Spec, TempDir};
use crate::security::seccomp::{self as sc, errno_name, Context, Plan, Profile, Verdict};

pub const LESSON: Lesson = super::engine::lesson::<Seccomp>();

pub struct Seccomp;

/// `nsx lesson seccomp` options.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
pub struct Options {
    /// A seccomp profile in Docker's JSON format for the container step, instead of nsx's
    /// default (profiles/seccomp-default.json, Docker's default in effect). A malformed
    /// profile, an unknown system call name, or a profile that would kill the probe's
    /// own set-up is refused (exit 2) before anything runs.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
}

/// The profile of the `filter` and `nnp` steps, in Docker's format: everything allowed
/// but three calls nsx never makes itself once a probe runs.
pub const DEMO_PROFILE: &str = r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [
    {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
    {"names": ["sysinfo"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
    {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}
  ]
}"#;

/// What the probe does once the container step's filter is installed, besides
/// [`sc::RUN_SETUP`]'s capability drop: fork a child per call, wait for it, read its own
/// /proc, and report. A profile that kills or refuses one of these cannot be shown.
const PROBE_SETUP: &[sc::Needed] = &[
    sc::Needed {
        name: "clone",
        why: "the probe makes each call in a child of its own",
        essential: true,
        // clone(SIGCHLD): no namespace flags.
        args: Some([libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
    },
    sc::Needed {
        name: "wait4",
        why: "the probe waits for each child",
        essential: true,
        args: None,
    },
    sc::Needed {
        name: "openat",
        why: "the probe reads its own /proc",
        essential: true,
        args: None,
    },
    sc::Needed {
        name: "read",
        why: "the probe reads its own /proc and waits on its pipe",
        essential: true,
        args: None,
    },
    sc::Needed {
        name: "write",
        why: "the probe sends its report to nsx",
        essential: true,
        args: None,
    },
    sc::Needed {
        name: "readlinkat",
        why: "the probe reads its namespace links",
        essential: false,
        args: None,
    },
    sc::Needed {
        name: "exit_group",
        why: "the probe and its children exit",
        essential: true,
        args: None,
    },
];

/// How one call ended, in the child of the probe that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "is", rename_all = "snake_case")]
pub enum Outcome {
    /// The call returned without an error.
    Ok,
    Failed {
        errno: i32,
    },
    /// The child died by this signal before the call returned.
    Killed {
        signal: String,
    },
    /// Not tried, and why.
    Skipped {
        why: String,
    },
}

impl Outcome {
    fn text(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Failed { errno } => errno_name(*errno as u32),
            Outcome::Killed { signal } => format!("killed by {signal}"),
            Outcome::Skipped { why } => format!("skipped ({why})"),
        }
    }

    fn failed_with(&self, e: i32) -> bool {
        *self == Outcome::Failed { errno: e }
    }

    /// What a filter's verdict makes of a call that would otherwise end as `without`.
    fn under(v: Verdict, without: &Outcome) -> Outcome {
        match v {
            Verdict::Allow | Verdict::Log => without.clone(),
            Verdict::Errno(e) => Outcome::Failed { errno: e as i32 },
            // seccomp(2): without a tracer, SECCOMP_RET_TRACE fails the call with ENOSYS.
            Verdict::Trace(_) => Outcome::Failed {
                errno: libc::ENOSYS,
            },
            Verdict::KillProcess | Verdict::KillThread | Verdict::Trap => Outcome::Killed {
                signal: "SIGSYS".into(),
            },
        }
    }
}

/// One call the probe made, and what the profile in force says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The call as a student would write it: `unshare(CLONE_NEWUSER)`.
    pub call: String,
    /// The system call's name.
    pub name: String,
    /// The verdict of the profile in force for these arguments (`None`: no filter).
    pub expected: Option<Verdict>,
    pub outcome: Outcome,
}

/// What a probe reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    pub view: View,
    pub attempts: Vec<Attempt>,
}

/// The nnp step's probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NnpSeen {
    pub view: View,
    /// Its effective capabilities when it tried without no_new_privs.
    pub cap_eff: u64,
    /// seccomp(2) before PR_SET_NO_NEW_PRIVS, then after.
    pub without: Outcome,
    pub with: Outcome,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    /// How many filters the demo profile compiles to (one per action).
    pub demo_filters: usize,
    pub before: Run<Seen>,
    pub filter: Run<Seen>,
    pub nnp: Run<NnpSeen>,
    /// The container step's profile: nsx's default, or the file given.
    pub profile: String,
    pub custom_profile: bool,
    /// How many filters it compiles to for Docker's default capabilities.
    pub container_filters: usize,
    pub docker: Run<Seen>,
    pub control: Run<Seen>,
}

const FILTER_CALLS: [&str; 4] = ["uname", "sysinfo", "getppid", "getpid"];

impl Def for Seccomp {
    const ID: &'static str = "seccomp";
    const TITLE: &'static str = "seccomp: a filter on the system calls themselves";
    const MECHANISM: &'static str =
        "seccomp(2) filters built by seccompiler from Docker-format profiles, PR_SET_NO_NEW_PRIVS";
    const MAN: &'static str =
        "seccomp(2), prctl(2) (PR_SET_NO_NEW_PRIVS), proc(5) (Seccomp), capabilities(7)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/seccomp.md");
    const SEES: Parts = Parts::SECURITY;
    const FACTS: &'static [&'static str] = &[
        "before-no-filter",
        "filter-eperm",
        "filter-enosys",
        "filter-kills",
        "filter-spares-the-rest",
        "host-sees-the-filters",
        "nnp-required",
        "nnp-then-filter",
        "sys-admin-needs-no-nnp",
        "profile-decides",
        "docker-profile-refuses",
        "no-capability-needed",
        "mount-refused-twice",
    ];
    const WORDS: &'static [&'static str] = &[
        "filter",
        "syscall",
        "syscalls",
        "bpf",
        "profile",
        "docker",
        "nnp",
        "no_new_privs",
        "sigsys",
        "security",
    ];
    type Options = Options;
    type Obs = Obs;

    fn check(options: &Options) -> Result<()> {
        container_plan(options).map(|_| ())
    }

    fn measure(m: &mut Measure, options: &Options) -> Result<Obs> {
        let demo = Profile::parse(DEMO_PROFILE, "the lesson's demo profile")?;
        // The demo filters and the container's are built before any probe runs: a probe
        // only installs them.
        let ctx = Context::native(crate::caps::ALL)?;
        let demo_plan = demo.resolve(&ctx);
        let demo_filters = demo_plan.compile()?;
        let (profile, plan) = container_plan(options)?;
        let filters = plan.compile()?;
        let dir = TempDir::new("seccomp")?;
        let target = dir.path().to_path_buf();

        let plain = |i: &mut Inside, plan: Option<&Plan>| -> Result<Seen> {
            let attempts = FILTER_CALLS
                .iter()
                .map(|name| simple_call(name, plan))
                .collect::<Result<Vec<_>>>()?;
            Ok(Seen {
                view: i.observe()?,
                attempts,
            })
        };
        // Each probe's filter is its own: the probes run side by side.
        let [before, filter] = m.probes_n(
            [Spec::new(CloneFlags::empty()), Spec::new(CloneFlags::empty())],
            |k, i| {
                if k == 0 {
                    return plain(i, None);
                }
                demo_filters.install(true)?;
                i.action(format!(
                    "prctl(PR_SET_NO_NEW_PRIVS, 1); seccomp(SECCOMP_SET_MODE_FILTER) × {}   (the demo profile: uname → EPERM, sysinfo → ENOSYS, getppid → kill)",
                    demo_filters.len()
                ));
                plain(i, Some(&demo_plan))
            },
            |_, _| Ok(()),
        )?;
        let nnp = m.probe(
            &Spec::new(CloneFlags::empty()),
            |i| nnp_probe(i, &demo_filters),
            |_| Ok(()),
        )?;
        // The container: its own mount namespace (the mount attempt can only ever land
        // there), Docker's default capabilities, the profile installed before they are
        // dropped (CAP_SYS_ADMIN allows it without no_new_privs, as runc does).
        let spec = Spec::new(CloneFlags::CLONE_NEWNS);
        let [docker, control] = m.probes_n(
            [spec.clone(), spec],
            |k, i| {
                if k == 0 {
                    filters.install(false)?;
                    i.action(format!(
                        "seccomp(SECCOMP_SET_MODE_FILTER) × {}   ({profile}, without no_new_privs: the probe holds CAP_SYS_ADMIN)",
                        filters.len()
                    ));
                }
                crate::run::privileges::drop_capabilities(crate::caps::DOCKER_DEFAULT)?;
                i.action("capset: Docker's default capabilities (no sys_admin)");
                let plan = (k == 0).then_some(&plan);
                let attempts = container_calls(i, &target, plan)?;
                Ok(Seen {
                    view: i.observe()?,
                    attempts,
                })
            },
            |_, _| Ok(()),
        )?;
        drop(dir);
        Ok(Obs {
            demo_filters: demo_filters.len(),
            before,
            filter,
            nnp,
            profile,
            custom_profile: options.profile.is_some(),
            container_filters: filters.len(),
            docker,
            control,
        })
    }

    fn judge(o: &Obs, _: &Options, env: &Env) -> Judged {
        let _ = env;
        let find = |s: &Seen, name: &str| -> Outcome {
            s.attempts
                .iter()
                .find(|a| a.name == name)
                .map(|a| a.outcome.clone())
                .unwrap_or(Outcome::Skipped {
                    why: "not tried".into(),
                })
        };
        let sec = |v: &View| v.probe.security.clone().unwrap_or_default();
        let b = &o.before.inside;
        let f = &o.filter.inside;
        let bh = sec(&o.before.host);
        let fh = sec(&o.filter.host);
        let mut facts = vec![
            Fact::new(
                "before-no-filter",
                format!(
                    "before, the host reads Seccomp: {} and Seccomp_filters: {} in {}/status, and uname, sysinfo, getppid and getpid all return",
                    opt(bh.seccomp),
                    opt(bh.seccomp_filters),
                    o.before.host.source
                ),
                bh.seccomp == Some(0)
                    && bh.seccomp_filters.unwrap_or(0) == 0
                    && FILTER_CALLS.iter().all(|c| find(b, c) == Outcome::Ok),
                json!({ "seccomp": bh.seccomp, "filters": bh.seccomp_filters, "attempts": b.attempts }),
            ),
            Fact::new(
                "filter-eperm",
                format!(
                    "under the filter, uname() fails with {} (its rule: SCMP_ACT_ERRNO, errnoRet 1)",
                    find(f, "uname").text()
                ),
                find(f, "uname").failed_with(libc::EPERM),
                json!({ "uname": find(f, "uname") }),
            ),
            Fact::new(
                "filter-enosys",
                format!(
                    "sysinfo() fails with {}: the errno is the filter's choice, here \"no such system call\", which is how runtimes hide a call a program may fall back from",
                    find(f, "sysinfo").text()
                ),
                find(f, "sysinfo").failed_with(libc::ENOSYS),
                json!({ "sysinfo": find(f, "sysinfo") }),
            ),
            Fact::new(
                "filter-kills",
                format!(
                    "getppid() never returned: the child that called it was {} (SECCOMP_RET_KILL_PROCESS), though before the filter it returned",
                    find(f, "getppid").text()
                ),
                find(f, "getppid")
                    == Outcome::Killed {
                        signal: "SIGSYS".into(),
                    }
                    && find(b, "getppid") == Outcome::Ok,
                json!({ "getppid": find(f, "getppid"), "before": find(b, "getppid") }),
            ),
            Fact::new(
                "filter-spares-the-rest",
                format!(
                    "getpid(), which no rule names, still returns under the filter ({})",
                    find(f, "getpid").text()
                ),
                find(f, "getpid") == Outcome::Ok,
                json!({ "getpid": find(f, "getpid") }),
            ),
            Fact::new(
                "host-sees-the-filters",
                format!(
                    "the host reads Seccomp: {} (filter mode), Seccomp_filters: {} (nsx installed {}, one per action) and NoNewPrivs: {} in {}/status",
                    opt(fh.seccomp),
                    opt(fh.seccomp_filters),
                    o.demo_filters,
                    flag(fh.no_new_privs),
                    o.filter.host.source
                ),
                fh.seccomp == Some(2)
                    && fh.seccomp_filters == Some(o.demo_filters as u32)
                    && fh.no_new_privs == Some(true),
                json!({ "seccomp": fh.seccomp, "filters": fh.seccomp_filters, "installed": o.demo_filters, "no_new_privs": fh.no_new_privs }),
            ),
        ];
        let n = &o.nnp.inside;
        let nh = sec(&o.nnp.host);
        facts.push(Fact::new(
            "nnp-required",
            format!(
                "without CAP_SYS_ADMIN (CapEff {}) and before no_new_privs, seccomp(SECCOMP_SET_MODE_FILTER) fails with {}",
                caps_text(n.cap_eff),
                n.without.text()
            ),
            n.without.failed_with(libc::EACCES) && !crate::caps::has(n.cap_eff, crate::caps::SYS_ADMIN),
            json!({ "without": n.without, "cap_eff": n.cap_eff }),
        ));
        facts.push(Fact::new(
            "nnp-then-filter",
            format!(
                "after prctl(PR_SET_NO_NEW_PRIVS, 1) the same filter installs ({}), and the host reads NoNewPrivs: {}, Seccomp: {}",
                n.with.text(),
                flag(nh.no_new_privs),
                opt(nh.seccomp)
            ),
            n.with == Outcome::Ok && nh.no_new_privs == Some(true) && nh.seccomp == Some(2),
            json!({ "with": n.with, "no_new_privs": nh.no_new_privs, "seccomp": nh.seccomp }),
        ));
        let d = &o.docker.inside;
        let c = &o.control.inside;
        let dh = sec(&o.docker.host);
        let ch = sec(&o.control.host);
        facts.push(Fact::new(
            "sys-admin-needs-no-nnp",
            format!(
                "holding CAP_SYS_ADMIN in its user namespace, the container's probe installed {} filter(s) without no_new_privs: the host reads NoNewPrivs: {}, Seccomp: {}, Seccomp_filters: {}",
                o.container_filters,
                flag(dh.no_new_privs),
                opt(dh.seccomp),
                opt(dh.seccomp_filters)
            ),
            dh.no_new_privs == Some(false)
                && dh.seccomp == Some(2)
                && dh.seccomp_filters == Some(o.container_filters as u32)
                && o.container_filters > 0,
            json!({ "no_new_privs": dh.no_new_privs, "seccomp": dh.seccomp, "filters": dh.seccomp_filters }),
        ));
        // What the profile says of each call, against what the call did, given what it
        // did without the profile.
        let mismatches: Vec<String> = d
            .attempts
            .iter()
            .filter_map(|a| {
                let without = find(c, &a.name);
                let want = Outcome::under(a.expected?, &without);
                (want != a.outcome).then(|| {
                    format!(
                        "{}: {} (the profile says {})",
                        a.call,
                        a.outcome.text(),
                        want.text()
                    )
                })
            })
            .collect();
        let decided = d.attempts.iter().all(|a| a.expected.is_some()) && !d.attempts.is_empty();
        facts.push(Fact::new(
            "profile-decides",
            if mismatches.is_empty() {
                format!(
                    "each call in the container ended as the profile's rules say for Docker's default capabilities ({})",
                    o.profile
                )
            } else {
                format!("calls that did not end as the profile says: {}", mismatches.join("; "))
            },
            decided && mismatches.is_empty(),
            json!({ "attempts": d.attempts, "control": c.attempts }),
        ));
        let refused = ["unshare", "keyctl", "mount"]
            .iter()
            .all(|n| find(d, n).failed_with(libc::EPERM));
        let fact = Fact::new(
            "docker-profile-refuses",
            format!(
                "under Docker's default profile, unshare(CLONE_NEWUSER) {}, keyctl() {} and mount() {}",
                find(d, "unshare").text(),
                find(d, "keyctl").text(),
                find(d, "mount").text()
            ),
            refused,
            json!({ "unshare": find(d, "unshare"), "keyctl": find(d, "keyctl"), "mount": find(d, "mount") }),
        );
        facts.push(if o.custom_profile {
            fact.inconclusive(format!(
                "the container ran under {}, not nsx's default profile",
                o.profile
            ))
        } else {
            fact
        });
        facts.push(Fact::new(
            "no-capability-needed",
            format!(
                "with the same capabilities and no filter, keyctl() gives {} and unshare(CLONE_NEWUSER) {}: neither needs a capability, so only the profile can refuse them",
                find(c, "keyctl").text(),
                find(c, "unshare").text()
            ),
            find(c, "keyctl") == Outcome::Ok
                && find(c, "unshare") == Outcome::Ok
                && ch.seccomp == Some(0),
            json!({ "keyctl": find(c, "keyctl"), "unshare": find(c, "unshare"), "seccomp": ch.seccomp }),
        ));
        facts.push(Fact::new(
            "mount-refused-twice",
            format!(
                "mount() fails with {} without the filter too: Docker's default capabilities lack CAP_SYS_ADMIN (CapEff {}), so two layers refuse it",
                find(c, "mount").text(),
                caps_text(ch.cap_eff)
            ),
            find(c, "mount").failed_with(libc::EPERM)
                && !crate::caps::has(ch.cap_eff, crate::caps::SYS_ADMIN),
            json!({ "mount": find(c, "mount"), "cap_eff": ch.cap_eff }),
        ));

        let steps = vec![
            calls_step("before", "before: no filter; four harmless calls", &o.before),
            calls_step(
                "filter",
                "filter: uname → EPERM, sysinfo → ENOSYS, getppid → kill (each call in a child of the probe)",
                &o.filter,
            )
            .takeaway(format!(
                "the kernel ran the filter before each call: {} filters, counted in Seccomp_filters",
                opt(fh.seccomp_filters)
            )),
            nnp_step(&o.nnp),
            calls_step(
                "docker",
                "docker: Docker's default capabilities and profile, in a mount namespace of its own",
                &o.docker,
            )
            .note(format!("the profile: {}", o.profile)),
            calls_step(
                "control",
                "control: the same capabilities, no filter",
                &o.control,
            )
            .takeaway(
                "keyctl and a user namespace need no capability: the profile is the only layer that refuses them; mount is refused by both",
            ),
        ];
        Judged {
            steps,
            facts,
            notes: Vec::new(),
            takeaway: Some(format!(
                "a filter answers before the kernel does anything: uname {}, sysinfo {}, getppid {}; in a container keyctl {} under the profile and {} without it",
                find(f, "uname").text(),
                find(f, "sysinfo").text(),
                find(f, "getppid").text(),
                find(d, "keyctl").text(),
                find(c, "keyctl").text()
            )),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        fn set(s: &mut Seen, name: &str, out: Outcome) {
            if let Some(a) = s.attempts.iter_mut().find(|a| a.name == name) {
                a.outcome = out;
            }
        }
        fn sec(v: &mut View) -> &mut crate::observe::Security {
            v.probe.security.get_or_insert_with(Default::default)
        }
        vec![
            F {
                fact: "before-no-filter",
                what: "a filter before",
                change: |o, _| sec(&mut o.before.host).seccomp = Some(2),
            },
            F {
                fact: "before-no-filter",
                what: "getppid failed before",
                change: |o, _| {
                    set(
                        &mut o.before.inside,
                        "getppid",
                        Outcome::Failed { errno: 1 },
                    )
                },
            },
            F {
                fact: "filter-eperm",
                what: "uname returned",
                change: |o, _| set(&mut o.filter.inside, "uname", Outcome::Ok),
            },
            F {
                fact: "filter-enosys",
                what: "sysinfo failed with EPERM",
                change: |o, _| {
                    set(
                        &mut o.filter.inside,
                        "sysinfo",
                        Outcome::Failed { errno: 1 },
                    )
                },
            },
            F {
                fact: "filter-kills",
                what: "getppid returned",
                change: |o, _| set(&mut o.filter.inside, "getppid", Outcome::Ok),
            },
            F {
                fact: "filter-spares-the-rest",
                what: "getpid failed",
                change: |o, _| set(&mut o.filter.inside, "getpid", Outcome::Failed { errno: 1 }),
            },
            F {
                fact: "host-sees-the-filters",
                what: "the host counts another number of filters",
                change: |o, _| sec(&mut o.filter.host).seccomp_filters = Some(1),
            },
            F {
                fact: "host-sees-the-filters",
                what: "the host reads no filter mode",
                change: |o, _| sec(&mut o.filter.host).seccomp = Some(0),
            },
            F {
                fact: "nnp-required",
                what: "the filter installed without no_new_privs",
                change: |o, _| o.nnp.inside.without = Outcome::Ok,
            },
            F {
                fact: "nnp-required",
                what: "the probe held CAP_SYS_ADMIN",
                change: |o, _| o.nnp.inside.cap_eff = crate::caps::ALL,
            },
            F {
                fact: "nnp-then-filter",
                what: "the host reads NoNewPrivs 0",
                change: |o, _| sec(&mut o.nnp.host).no_new_privs = Some(false),
            },
            F {
                fact: "sys-admin-needs-no-nnp",
                what: "no_new_privs was set",
                change: |o, _| sec(&mut o.docker.host).no_new_privs = Some(true),
            },
            F {
                fact: "profile-decides",
                what: "keyctl returned under a profile that refuses it",
                change: |o, _| {
                    set(&mut o.docker.inside, "keyctl", Outcome::Ok);
                    for a in &mut o.docker.inside.attempts {
                        if a.name == "keyctl" {
                            a.expected = Some(Verdict::Errno(1));
                        }
                    }
                },
            },
            F {
                fact: "docker-profile-refuses",
                what: "unshare succeeded in the container",
                change: |o, _| set(&mut o.docker.inside, "unshare", Outcome::Ok),
            },
            F {
                fact: "no-capability-needed",
                what: "keyctl failed without the filter",
                change: |o, _| {
                    set(
                        &mut o.control.inside,
                        "keyctl",
                        Outcome::Failed { errno: 1 },
                    )
                },
            },
            F {
                fact: "mount-refused-twice",
                what: "mount succeeded without the filter",
                change: |o, _| set(&mut o.control.inside, "mount", Outcome::Ok),
            },
        ]
    }
}

/// The container step's profile, checked: it must parse, name known calls, and let the
/// probe finish its work once installed (a usage error, exit 2, otherwise).
fn container_plan(options: &Options) -> Result<(String, Plan)> {
    let (name, profile) = match &options.profile {
        Some(path) => (path.display().to_string(), Profile::load(path)?),
        None => (
            "nsx's default profile (Docker's default in effect)".to_string(),
            Profile::default_profile(),
        ),
    };
    let plan = profile.resolve(&Context::native(crate::caps::DOCKER_DEFAULT)?);
    let needed: Vec<sc::Needed> = sc::RUN_SETUP
        .iter()
        .filter(|n| n.name != "execve")
        .chain(PROBE_SETUP)
        .copied()
        .collect();
    plan.check_setup(&needed, &name)?;
    Ok((name, plan))
}

/// A capability set, short: Docker's default set by name, others as `CapSet` sums them.
fn caps_text(mask: u64) -> String {
    if mask == crate::caps::DOCKER_DEFAULT {
        "Docker's default 14 (no sys_admin)".to_string()
    } else {
        crate::caps::CapSet::new(mask).summary()
    }
}

fn opt(v: Option<u32>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

fn flag(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "1",
        Some(false) => "0",
        None => "-",
    }
}

/// Runs `call` in a child of this process (a copy that inherits its filters and
/// capabilities) and says how it ended: the child exits with 0 or the errno, or dies.
/// The child is made non-dumpable first: a process killed by a filter dumps core
/// otherwise (seccomp(2)), and a non-dumpable one dumps none, whatever core_pattern says.
fn in_child(call: impl FnOnce() -> libc::c_long) -> Result<Outcome> {
    use nix::sys::wait::{waitpid, WaitStatus};
    match crate::sandbox::raw_clone(CloneFlags::empty())
        .map_err(|e| crate::error::sys("clone", "a child for one call", e))?
    {
        None => {
            // SAFETY: PR_SET_DUMPABLE takes 0 or 1.
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
            let code = match call() {
                -1 => nix::errno::Errno::last() as i32,
                _ => 0,
            };
            // SAFETY: the child leaves without running the probe's destructors.
            unsafe { libc::_exit(code.clamp(0, 255)) }
        }
        Some(pid) => loop {
            match waitpid(pid, None) {
                Ok(WaitStatus::Exited(_, 0)) => return Ok(Outcome::Ok),
                Ok(WaitStatus::Exited(_, e)) => return Ok(Outcome::Failed { errno: e }),
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    return Ok(Outcome::Killed {
                        signal: sig.as_str().to_string(),
                    })
                }
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(crate::error::sys("waitpid", pid, e)),
            }
        },
    }
}

/// One of the filter step's calls: no arguments that matter, each in a child.
fn simple_call(name: &str, plan: Option<&Plan>) -> Result<Attempt> {
    let nr = match name {
        "uname" => libc::SYS_uname,
        "sysinfo" => libc::SYS_sysinfo,
        "getppid" => libc::SYS_getppid,
        _ => libc::SYS_getpid,
    };
    let outcome = in_child(|| match name {
        "uname" => {
            // SAFETY: uname(2) fills the struct given.
            let mut u: libc::utsname = unsafe { std::mem::zeroed() };
            // SAFETY: a valid pointer to a utsname.
            unsafe { libc::syscall(nr, &mut u as *mut libc::utsname) }
        }
        "sysinfo" => {
            // SAFETY: sysinfo(2) fills the struct given.
            let mut s: libc::sysinfo = unsafe { std::mem::zeroed() };
            // SAFETY: a valid pointer to a sysinfo.
            unsafe { libc::syscall(nr, &mut s as *mut libc::sysinfo) }
        }
        // SAFETY: getppid(2) and getpid(2) take no argument.
        _ => unsafe { libc::syscall(nr) },
    })?;
    Ok(Attempt {
        call: format!("{name}()"),
        name: name.to_string(),
        expected: plan.map(|p| p.verdict(nr, &[0; 6])),
        outcome,
    })
}

/// The nnp step: drop CAP_SYS_ADMIN (all effective capabilities), try to install the demo
/// filter (seccomp(2): EACCES without CAP_SYS_ADMIN in the user namespace or
/// no_new_privs), set no_new_privs, try again.
fn nnp_probe(i: &mut Inside, filters: &sc::Filters) -> Result<NnpSeen> {
    drop_effective()?;
    i.action("capset: effective set emptied (no CAP_SYS_ADMIN)");
    let cap_eff = i
        .observe()?
        .probe
        .security
        .map(|s| s.cap_eff)
        .unwrap_or(crate::caps::ALL);
    let without = install_outcome(filters.install(false))?;
    i.action(format!(
        "seccomp(SECCOMP_SET_MODE_FILTER) = {}",
        without.text()
    ));
    sc::set_no_new_privs()?;
    i.action("prctl(PR_SET_NO_NEW_PRIVS, 1)");
    let with = install_outcome(filters.install(false))?;
    i.action(format!(
        "seccomp(SECCOMP_SET_MODE_FILTER) × {} = {}",
        filters.len(),
        with.text()
    ));
    Ok(NnpSeen {
        view: i.observe()?,
        cap_eff,
        without,
        with,
    })
}

/// An install that failed with an errno is the lesson's observation; anything else is
/// an error.
fn install_outcome(r: Result<()>) -> Result<Outcome> {
    match r {
        Ok(()) => Ok(Outcome::Ok),
        Err(Error::Sys(e)) => Ok(Outcome::Failed {
            errno: e.errno as i32,
        }),
        Err(e) => Err(e),
    }
}

/// capset(2) with an empty effective set: the permitted set stays, the effective one
/// (what the kernel checks) is emptied, which a process may always do.
fn drop_effective() -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set.
    let mut header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: a v3 header and the two data words v3 fills.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(crate::error::sys(
            "capget",
            "the probe",
            nix::errno::Errno::last(),
        ));
    }
    for d in &mut data {
        d.effective = 0;
    }
    // SAFETY: the same header and data, read by the kernel.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(crate::error::sys(
            "capset",
            "an empty effective set",
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}

/// The container step's calls, each in a child: keyctl (needs no capability), mount of a
/// tmpfs on `target` (needs CAP_SYS_ADMIN; only tried in a private mount namespace, so
/// it could never reach the host), unshare(CLONE_NEWUSER) (needs no capability).
fn container_calls(
    i: &mut Inside,
    target: &std::path::Path,
    plan: Option<&Plan>,
) -> Result<Vec<Attempt>> {
    use std::os::unix::ffi::OsStrExt;
    const KEYCTL_GET_KEYRING_ID: u64 = 0;
    const KEY_SPEC_SESSION_KEYRING: i64 = -3;
    let expect = |nr: libc::c_long, args: [u64; 6]| plan.map(|p| p.verdict(nr, &args));
    let mut out = Vec::new();
    // keyctl(2) KEYCTL_GET_KEYRING_ID without create: reads the id of the session
    // keyring, changes nothing.
    let outcome = in_child(|| {
        // SAFETY: keyctl with integer arguments only.
        unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_GET_KEYRING_ID,
                KEY_SPEC_SESSION_KEYRING,
                0,
            )
        }
    })?;
    out.push(Attempt {
        call: "keyctl(KEYCTL_GET_KEYRING_ID)".into(),
        name: "keyctl".into(),
        expected: expect(
            libc::SYS_keyctl,
            [
                KEYCTL_GET_KEYRING_ID,
                KEY_SPEC_SESSION_KEYRING as u64,
                0,
                0,
                0,
                0,
            ],
        ),
        outcome,
    });
    let outcome = if i.mounts_are_private() {
        let path = std::ffi::CString::new(target.as_os_str().as_bytes())
            .map_err(|_| Error::Other("a NUL byte in the temp dir's path".into()))?;
        in_child(|| {
            // mount(2) of a tmpfs in the probe's own mount namespace, whose / is private.
            // SAFETY: NUL-terminated strings that outlive the call.
            unsafe {
                libc::syscall(
                    libc::SYS_mount,
                    c"nsx-seccomp".as_ptr(),
                    path.as_ptr(),
                    c"tmpfs".as_ptr(),
                    0usize,
                    std::ptr::null::<libc::c_void>(),
                )
            }
        })?
    } else {
        Outcome::Skipped {
            why: "not in a private mount namespace".into(),
        }
    };
    out.push(Attempt {
        call: "mount(tmpfs)".into(),
        name: "mount".into(),
        expected: expect(libc::SYS_mount, [0; 6]),
        outcome,
    });
    // unshare(2) CLONE_NEWUSER: the child alone moves into a new user namespace.
    let flags = libc::CLONE_NEWUSER as u64;
    // SAFETY: unshare takes a flag word.
    let outcome = in_child(|| unsafe { libc::syscall(libc::SYS_unshare, flags) })?;
    out.push(Attempt {
        call: "unshare(CLONE_NEWUSER)".into(),
        name: "unshare".into(),
        expected: expect(libc::SYS_unshare, [flags, 0, 0, 0, 0, 0]),
        outcome,
    });
    let outcome = in_child(|| {
        // SAFETY: getpid takes no argument.
        unsafe { libc::syscall(libc::SYS_getpid) }
    })?;
    out.push(Attempt {
        call: "getpid()".into(),
        name: "getpid".into(),
        expected: expect(libc::SYS_getpid, [0; 6]),
        outcome,
    });
    i.action(format!(
        "in a child each: keyctl, mount -t tmpfs nsx-seccomp {}, unshare(CLONE_NEWUSER), getpid",
        target.display()
    ));
    Ok(out)
}

/// The status rows of a probe (read two ways), then one row per call.
fn calls_step(id: &str, title: &str, run: &Run<Seen>) -> Step {
    let (host, inside) = (&run.host, &run.inside.view);
    let sec = |v: &View| v.probe.security.clone().unwrap_or_default();
    let (h, p) = (sec(host), sec(inside));
    let num = |v: Option<u32>| match v {
        Some(n) => Val::Num(i64::from(n)),
        None => Val::None("not in this kernel's status".into()),
    };
    let bool_val = |v: Option<bool>| match v {
        Some(b) => Val::Num(i64::from(b)),
        None => Val::None("not in this kernel's status".into()),
    };
    let mut rows = vec![
        Row::probe(
            "seccomp mode",
            "status Seccomp",
            num(h.seccomp),
            num(p.seccomp),
        ),
        Row::probe(
            "filters",
            "status Seccomp_filters",
            num(h.seccomp_filters),
            num(p.seccomp_filters),
        )
        .key(),
        Row::probe(
            "no_new_privs",
            "status NoNewPrivs",
            bool_val(h.no_new_privs),
            bool_val(p.no_new_privs),
        ),
        Row::probe(
            "capabilities",
            "status CapEff",
            Val::text(caps_text(h.cap_eff)),
            Val::text(caps_text(p.cap_eff)),
        ),
    ];
    for a in &run.inside.attempts {
        rows.push(Row::probe(
            a.call.clone(),
            "a system call",
            Val::None("only the probe can call it".into()),
            Val::text(a.outcome.text()),
        ));
    }
    kit::step(id, title, run, inside, rows)
}

fn nnp_step(run: &Run<NnpSeen>) -> Step {
    let (host, inside) = (&run.host, &run.inside.view);
    let sec = |v: &View| v.probe.security.clone().unwrap_or_default();
    let (h, p) = (sec(host), sec(inside));
    let n = &run.inside;
    let flag_val = |v: Option<bool>| match v {
        Some(b) => Val::Num(i64::from(b)),
        None => Val::None("not in this kernel's status".into()),
    };
    let rows = vec![
        Row::probe(
            "capabilities",
            "status CapEff",
            Val::text(caps_text(h.cap_eff)),
            Val::text(caps_text(p.cap_eff)),
        ),
        Row::probe(
            "seccomp() before no_new_privs",
            "a system call",
            Val::None("only the probe can call it".into()),
            Val::text(n.without.text()),
        )
        .key(),
        Row::probe(
            "seccomp() after",
            "a system call",
            Val::None("only the probe can call it".into()),
            Val::text(n.with.text()),
        ),
        Row::probe(
            "no_new_privs",
            "status NoNewPrivs",
            flag_val(h.no_new_privs),
            flag_val(p.no_new_privs),
        ),
        Row::probe(
            "seccomp mode",
            "status Seccomp",
            h.seccomp
                .map_or(Val::None("-".into()), |v| Val::Num(v.into())),
            p.seccomp
                .map_or(Val::None("-".into()), |v| Val::Num(v.into())),
        ),
    ];
    kit::step(
        "nnp",
        "nnp: a process without CAP_SYS_ADMIN installs a filter only after no_new_privs",
        run,
        inside,
        rows,
    )
    .takeaway(
        "no_new_privs first: then no setuid program can gain privileges under a filter it did not expect",
    )
}
