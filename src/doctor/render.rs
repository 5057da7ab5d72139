//! The doctor's report as text. Reads nothing: everything comes from the [`Report`].

use std::fmt::Write;

use colored::Colorize;

use super::{ControllerState, Detection, Machine, Report, Verdict};
use crate::cgroup::{Mode, Version};
use crate::lessons::Support;
use crate::report::Privilege;

pub fn human(r: &Report) -> String {
    let m = &r.machine;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}",
        "nsx doctor · what this machine offers the lessons".bold()
    );
    let _ = writeln!(
        s,
        "  nsx runs {}; the rootless verdicts are for {}",
        match m.privilege {
            Privilege::Root => "as root".to_string(),
            Privilege::Rootless => format!("as uid {} (not root)", m.nsx.uid),
        },
        match m.user {
            Some(u) if m.privilege == Privilege::Root => format!("uid {} (SUDO_UID)", u.uid),
            Some(u) => format!("uid {}", u.uid),
            None =>
                "any unprivileged user (run nsx doctor as that user, or with sudo, to check one)"
                    .to_string(),
        }
    );

    section(&mut s, "kernel");
    let _ = writeln!(
        s,
        "  {}{}",
        if m.kernel.release.is_empty() {
            "unknown (/proc/sys/kernel/osrelease is unreadable)"
        } else {
            &m.kernel.release
        },
        match m.kernel.version {
            Some([a, b, c]) => format!(" (version {a}.{b}.{c})"),
            None => String::new(),
        }
    );

    cgroups(&mut s, m);

    section(&mut s, "namespaces");
    let u = &m.user_namespaces;
    let sysctl = |name: &str, v: Option<i64>| match v {
        Some(v) => format!("{name} = {v}"),
        None => format!("{name}: absent"),
    };
    let _ = writeln!(
        s,
        "  user namespaces for unprivileged users: {}",
        match &u.unprivileged {
            None => "allowed".green().to_string(),
            Some(p) => format!("{} ({})", "not allowed".red(), p.reason),
        }
    );
    let _ = writeln!(
        s,
        "    {}; {}; {}",
        sysctl("user.max_user_namespaces", u.max_user_namespaces),
        sysctl(
            "kernel.unprivileged_userns_clone",
            u.unprivileged_userns_clone
        ),
        sysctl(
            "kernel.apparmor_restrict_unprivileged_userns",
            u.apparmor_restrict_unprivileged_userns
        )
    );
    if let Some(p) = &u.unprivileged {
        let _ = writeln!(s, "    fix: {}", p.fix);
    }
    let ok: Vec<&str> = m
        .namespaces
        .iter()
        .filter(|n| n.problem.is_none())
        .map(|n| n.name.as_str())
        .collect();
    let _ = writeln!(
        s,
        "  types that can be created: {}",
        if ok.is_empty() {
            "none".to_string()
        } else {
            ok.join(" ")
        }
    );
    for n in m.namespaces.iter().filter(|n| n.problem.is_some()) {
        let p = n.problem.as_ref().expect("filtered");
        let _ = writeln!(s, "  {} {}: {}", "✗".red(), n.name, p.reason);
        let _ = writeln!(s, "    fix: {}", p.fix);
    }
    let time = m.namespaces.iter().find(|n| n.name == "time");
    let _ = writeln!(
        s,
        "  time namespaces: {}",
        match time {
            Some(t) if t.problem.is_none() => format!(
                "yes (kernel {} ≥ 5.6, /proc/self/ns/time exists)",
                version_text(m)
            ),
            Some(t) => format!(
                "no: {}",
                t.problem.as_ref().map(|p| p.reason.as_str()).unwrap_or("")
            ),
            None => "unknown".to_string(),
        }
    );

    section(&mut s, "overlayfs");
    let o = &m.overlay;
    let _ = writeln!(
        s,
        "  {}",
        if o.listed {
            "available (overlay is in /proc/filesystems)".to_string()
        } else if let Some(module) = &o.module {
            format!(
                "available as a module, loaded on first use ({})",
                module.display()
            )
        } else {
            format!(
                "{}: {}",
                "not available".red(),
                o.problem.as_ref().map(|p| p.reason.as_str()).unwrap_or("")
            )
        }
    );
    if let Some(p) = o.rootless_problem.as_ref().filter(|_| o.available) {
        let _ = writeln!(s, "  without root: {}", p.reason);
    }

    section(&mut s, "where nsx runs");
    detection(&mut s, "container", &m.environment.container);
    detection(&mut s, "WSL", &m.environment.wsl);
    detection(&mut s, "virtual machine", &m.environment.vm);
    if let Some(pid1) = &m.environment.pid1 {
        let _ = writeln!(s, "  PID 1: {pid1}");
    }
    let _ = writeln!(
        s,
        "  nsx itself: CAP_SYS_ADMIN {}; seccomp {}",
        if m.nsx.cap_sys_admin {
            "effective"
        } else if m.nsx.cap_sys_admin_bounding {
            "not effective (root gets it)"
        } else {
            "not even in the bounding set"
        },
        m.nsx.seccomp.as_deref().unwrap_or("unknown")
    );

    section(&mut s, "lessons");
    // A reason shared by several lessons (a sysctl, the cgroup setup) is written once,
    // as a numbered note.
    let mut notes: Vec<(&str, &str)> = Vec::new();
    let id_w = r.lessons.iter().map(|l| l.id.len()).max().unwrap_or(0);
    let verdict_w = r
        .lessons
        .iter()
        .map(|l| l.verdict.text().len())
        .max()
        .unwrap_or(0);
    for l in &r.lessons {
        let text = format!("{:<verdict_w$}", l.verdict.text());
        let verdict = match l.verdict {
            Verdict::Rootless => text.green().bold(),
            Verdict::Root => text.yellow().bold(),
            Verdict::Blocked => text.red().bold(),
        };
        let (label, why) = match l.verdict {
            Verdict::Rootless => ("", &Support::Yes),
            Verdict::Root => ("not rootless: ", &l.rootless),
            Verdict::Blocked => ("", &l.as_root),
        };
        let note = match why {
            Support::Yes => String::new(),
            Support::No { reason, fix } => {
                let key = (reason.as_str(), fix.as_str());
                let n = match notes.iter().position(|k| *k == key) {
                    Some(i) => i + 1,
                    None => {
                        notes.push(key);
                        notes.len()
                    }
                };
                format!("  {label}[{n}]")
            }
        };
        let _ = writeln!(s, "  {:<id_w$}  {verdict}{note}", l.id);
    }
    for (i, (reason, fix)) in notes.iter().enumerate() {
        let _ = writeln!(s);
        let _ = writeln!(s, "  [{}] {reason}", i + 1);
        let _ = writeln!(s, "      fix: {fix}");
    }
    let count = |v: Verdict| r.lessons.iter().filter(|l| l.verdict == v).count();
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{} lessons: {} run rootless, {} as root only, {} blocked",
        r.lessons.len(),
        count(Verdict::Rootless),
        count(Verdict::Root),
        count(Verdict::Blocked)
    );
    s
}

fn version_text(m: &Machine) -> String {
    match m.kernel.version {
        Some([a, b, _]) => format!("{a}.{b}"),
        None => m.kernel.release.clone(),
    }
}

fn section(s: &mut String, title: &str) {
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", title.bold().cyan());
}

fn detection(s: &mut String, what: &str, d: &Detection) {
    if !d.detected {
        let _ = writeln!(s, "  {what}: no sign of one");
        return;
    }
    let _ = writeln!(
        s,
        "  {what}: {}{}",
        "yes".yellow(),
        d.kind
            .as_ref()
            .map(|k| format!(" ({k})"))
            .unwrap_or_default()
    );
    for e in &d.evidence {
        let _ = writeln!(s, "    because {e}");
    }
}

fn cgroups(s: &mut String, m: &Machine) {
    section(s, "cgroups");
    let c = &m.cgroup;
    let Some(mode) = c.mode else {
        if let Some(p) = &c.problem {
            let _ = writeln!(s, "  {} {}", "✗".red(), p.reason);
            let _ = writeln!(s, "    fix: {}", p.fix);
        }
        return;
    };
    let _ = writeln!(
        s,
        "  mode: {}",
        match mode {
            Mode::V1 => format!(
                "v1 (one hierarchy per controller under {})",
                c.root.display()
            ),
            Mode::Hybrid => format!(
                "hybrid (v1 controllers under {}, plus a cgroup2 mount at {}/unified; nsx uses v1)",
                c.root.display(),
                c.root.display()
            ),
            Mode::V2 => format!("v2 (one unified hierarchy at {})", c.root.display()),
        }
    );
    let list = |f: &dyn Fn(&ControllerState) -> bool| -> String {
        let names: Vec<&str> = c
            .controllers
            .iter()
            .filter(|x| f(x))
            .map(|x| x.name.as_str())
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(" ")
        }
    };
    let v1 = list(&|x| x.hierarchy == Some(Version::V1));
    let v2 = list(&|x| x.hierarchy == Some(Version::V2));
    if mode != Mode::V2 || v1 != "none" {
        let _ = writeln!(s, "  controllers on v1 hierarchies: {v1}");
    }
    if mode != Mode::V1 || v2 != "none" {
        let _ = writeln!(s, "  controllers on the unified hierarchy: {v2}");
    }
    let unmounted = list(&|x| x.hierarchy.is_none());
    if unmounted != "none" {
        let _ = writeln!(s, "  not mounted: {unmounted}");
    }
    let usable = list(&|x| x.available);
    let _ = writeln!(s, "  usable by nsx as root: {usable}");
    let delegated = list(&|x| x.delegated);
    let _ = writeln!(
        s,
        "  delegated to {}: {}",
        match m.user {
            Some(u) => format!("uid {}", u.uid),
            None => "an unprivileged user".to_string(),
        },
        delegated
    );
    if let Some(d) = c.delegation.as_ref().filter(|d| d.into_own) {
        let _ = writeln!(
            s,
            "    nsx runs in {}, which {} and is delegated: {}",
            d.own.display(),
            match d.own_owner {
                Some(uid) => format!("belongs to uid {uid}"),
                None => "is missing".to_string(),
            },
            format!(
                "nsx moves itself into a leaf of it and keeps lesson cgroups beside that leaf, in {}/nsx",
                d.own.display()
            )
            .green()
        );
    } else if let Some(d) = &c.delegation {
        let _ = writeln!(
            s,
            "    nsx runs in {}; lesson cgroups go under {}/nsx, and {} {}, {}",
            d.own.display(),
            d.base.display(),
            d.base.display(),
            match d.owner {
                Some(0) => "belongs to root".to_string(),
                Some(uid) => format!("belongs to uid {uid}"),
                None => "is missing".to_string(),
            },
            if d.writable {
                "so it is delegated".green().to_string()
            } else {
                "so only root can create them".to_string()
            }
        );
    }
    if c.mode == Some(Mode::V2) {
        if c.switches_on.is_empty() {
            if !c.already_on.is_empty() {
                let _ = writeln!(
                    s,
                    "  nsx would switch on no controller: {} already on down to where lesson cgroups go",
                    c.already_on.join(", ")
                );
            }
        } else {
            let _ = writeln!(
                s,
                "  nsx would switch on (and never switches off; see README, Safety):"
            );
            for w in &c.switches_on {
                let plus: Vec<String> = w.controllers.iter().map(|c| format!("+{c}")).collect();
                let _ = writeln!(s, "    echo {} > {}", plus.join(" "), w.file.display());
            }
            if !c.already_on.is_empty() {
                let _ = writeln!(s, "    already on all the way: {}", c.already_on.join(", "));
            }
        }
    }
    // The lessons' controllers: why root or a user cannot use them, one line per reason.
    let mut lines: Vec<(String, Vec<&str>)> = Vec::new();
    for name in ["memory", "cpu", "pids"] {
        let Some(x) = c.controllers.iter().find(|x| x.name == name) else {
            continue;
        };
        let line = if let Some(p) = &x.unavailable {
            format!("{} {{}}: {}", "✗".red(), p.reason)
        } else if let Some(why) = x.not_delegated.as_ref().filter(|_| !x.delegated) {
            format!("{{}} without root: {why}")
        } else {
            continue;
        };
        match lines.iter_mut().find(|(l, _)| *l == line) {
            Some((_, names)) => names.push(name),
            None => lines.push((line, vec![name])),
        }
    }
    for (line, names) in lines {
        let _ = writeln!(s, "  {}", line.replacen("{}", &names.join(", "), 1));
    }
}
