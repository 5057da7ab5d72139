//! `nsx inspect` and `nsx ps` as text. Reads nothing: everything comes from the reports.

use std::fmt::Write;

use colored::Colorize;

use super::{IdMap, Inspection, Ps, Shown};
use crate::lessons::ns_label;

pub fn inspection(i: &Inspection) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}",
        format!("nsx inspect {} · {}", i.pid, i.name).bold()
    );
    let _ = writeln!(
        s,
        "  parent PID {}; uid {} (effective {}), gid {}",
        i.ppid, i.uid, i.euid, i.gid
    );
    let nspid: Vec<String> = i.nspid.iter().map(|p| p.to_string()).collect();
    let _ = writeln!(
        s,
        "  PID in each PID namespace, from nsx's inwards (NSpid): {}{}",
        nspid.join(" → "),
        if i.nspid.len() > 1 {
            format!(
                " (it runs in a PID namespace {} level{} below nsx's)",
                i.nspid.len() - 1,
                if i.nspid.len() > 2 { "s" } else { "" }
            )
        } else {
            String::new()
        }
    );

    section(&mut s, "namespaces");
    let pid_head = format!("PID {}", i.pid);
    let nsx_head = format!("nsx (PID {})", i.nsx_pid);
    let labels: Vec<String> = i
        .namespaces
        .iter()
        .map(|r| ns_label(&r.ty, r.inode))
        .collect();
    let w = labels
        .iter()
        .map(|l| l.chars().count())
        .chain([pid_head.len()])
        .max()
        .unwrap_or(0);
    let _ = writeln!(s, "    {pid_head:<w$}  {nsx_head}");
    for (r, label) in i.namespaces.iter().zip(&labels) {
        let theirs = r
            .nsx
            .map(|n| ns_label(&r.ty, n))
            .unwrap_or_else(|| "-".into());
        if r.differs {
            let _ = writeln!(
                s,
                "  {} {}  {}",
                "≠".yellow().bold(),
                format!("{label:<w$}").yellow().bold(),
                theirs
            );
        } else {
            let _ = writeln!(s, "    {label:<w$}  {theirs}");
        }
    }
    let _ = writeln!(
        s,
        "  {}",
        if i.differs.is_empty() {
            "the same namespaces as nsx: seen from here, not isolated at all".to_string()
        } else {
            format!(
                "{} of {} differ from nsx's: {}",
                i.differs.len(),
                i.namespaces.len(),
                i.differs.join(" ")
            )
        }
    );

    section(&mut s, "cgroups (and the limits set on each)");
    for c in &i.cgroups {
        let which = if c.hierarchy_id == 0 {
            "v2 (unified)".to_string()
        } else {
            format!("v1 {}", c.controllers.join(","))
        };
        let _ = writeln!(s, "  {which}: {}", c.path);
        for l in &c.limits {
            let _ = writeln!(s, "      {} = {} ({})", l.file, l.value, l.meaning);
        }
    }
    if i.cgroups.iter().all(|c| c.limits.is_empty()) {
        let _ = writeln!(
            s,
            "  no limit files found on these cgroups (root cgroups and controllers not enabled for a cgroup have none)"
        );
    }

    section(&mut s, "user namespace id maps");
    id_maps(&mut s, "uid", &i.uid_map);
    id_maps(&mut s, "gid", &i.gid_map);

    section(&mut s, "capabilities");
    let c = &i.capabilities;
    let _ = writeln!(
        s,
        "  effective  {}  {}",
        c.effective.hex.dimmed(),
        c.effective.summary()
    );
    let _ = writeln!(
        s,
        "  permitted  {}  {}",
        c.permitted.hex.dimmed(),
        c.permitted.summary()
    );
    if let Some(b) = &c.bounding {
        let _ = writeln!(s, "  bounding   {}  {}", b.hex.dimmed(), b.summary());
    }
    if let Some(a) = c.ambient.as_ref().filter(|a| !a.names.is_empty()) {
        let _ = writeln!(s, "  ambient    {}  {}", a.hex.dimmed(), a.summary());
    }

    section(&mut s, "seccomp and no_new_privs");
    let mode = match (i.seccomp.as_deref(), i.seccomp_filters) {
        (None, _) => "unknown (no Seccomp line in status)".to_string(),
        (Some("filter"), Some(n)) => format!(
            "filter: {n} filter{} (Seccomp 2, Seccomp_filters {n}): the kernel runs {} before each system call; nsx why PID CALL says which layer refused a call",
            if n == 1 { "" } else { "s" },
            if n == 1 { "it" } else { "them all" }
        ),
        (Some("filter"), None) => "filter (Seccomp 2)".to_string(),
        (Some("disabled"), _) => "disabled (Seccomp 0): no filter, every system call reaches the kernel".to_string(),
        (Some("strict"), _) => "strict (Seccomp 1): only read, write, _exit and sigreturn".to_string(),
        (Some(other), _) => other.to_string(),
    };
    let _ = writeln!(s, "  seccomp       {mode}");
    let _ = writeln!(
        s,
        "  no_new_privs  {}",
        match i.no_new_privs {
            Some(true) => "set (NoNewPrivs 1): execve grants no privilege (setuid bits and file capabilities are ignored)",
            Some(false) => "not set (NoNewPrivs 0): a setuid program it runs gains its owner's privileges",
            None => "unknown (no NoNewPrivs line in status)",
        }
    );

    section(&mut s, "Docker's masked and read-only paths");
    match &i.masked_paths {
        None => {
            let _ = writeln!(s, "  unknown: /proc/{}/mountinfo could not be read", i.pid);
        }
        Some(states) => {
            for (shown, label) in [
                (Shown::Masked, "masked   "),
                (Shown::ReadOnly, "read-only"),
                (Shown::Open, "open     "),
            ] {
                let paths: Vec<&str> = states
                    .iter()
                    .filter(|p| p.shown == shown)
                    .map(|p| p.path.as_str())
                    .collect();
                let list = if paths.is_empty() {
                    "none".to_string()
                } else {
                    paths.join(" ")
                };
                let _ = writeln!(s, "  {label}  {list}");
            }
            let _ = writeln!(
                s,
                "  (from /proc/{}/mountinfo: /dev/null or a read-only tmpfs on a path masks it; a path absent on this kernel shows as open)",
                i.pid
            );
        }
    }
    s
}

fn id_maps(s: &mut String, what: &str, maps: &[IdMap]) {
    if maps.is_empty() {
        let _ = writeln!(s, "  {what}_map: none (this kernel has no user namespaces)");
        return;
    }
    for m in maps {
        let meaning = if m.inside == 0 && m.outside == 0 && m.count == u32::MAX as u64 {
            "every id is itself: the initial user namespace".to_string()
        } else if m.count == 1 {
            format!("{what} {} inside is {what} {} outside", m.inside, m.outside)
        } else {
            format!(
                "{what}s {}..{} inside are {}..{} outside",
                m.inside,
                m.inside + m.count - 1,
                m.outside,
                m.outside + m.count - 1
            )
        };
        let _ = writeln!(
            s,
            "  {what}_map  {} {} {}  ({meaning})",
            m.inside, m.outside, m.count
        );
    }
}

fn section(s: &mut String, title: &str) {
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", title.bold().cyan());
}

/// How many processes of a group are listed by name.
const SHOWN: usize = 8;

pub fn ps(p: &Ps) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}",
        format!(
            "nsx ps · {} processes in {} namespace sets",
            p.process_count(),
            p.groups.len()
        )
        .bold()
    );
    let _ = writeln!(
        s,
        "  processes that share every namespace form a set; a container is a set whose namespaces differ from the host's (here: nsx's own, PID {})",
        p.nsx_pid
    );
    for (n, g) in p.groups.iter().enumerate() {
        let _ = writeln!(s);
        let count = match g.processes.len() {
            1 => "1 process".to_string(),
            k => format!("{k} processes"),
        };
        let head = if g.differs.is_empty() {
            format!("set {} · the same namespaces as nsx · {count}", n + 1)
        } else {
            format!(
                "set {} · its own {} namespace{} · {count}",
                n + 1,
                g.differs.join(" "),
                if g.differs.len() == 1 { "" } else { "s" }
            )
        };
        let _ = writeln!(s, "{}", head.bold().cyan());
        if !g.differs.is_empty() {
            let labels: Vec<String> = g
                .differs
                .iter()
                .filter_map(|ty| g.ns.get(ty).map(|i| ns_label(ty, *i)))
                .collect();
            let _ = writeln!(s, "  {}", labels.join(" "));
        }
        let mut names: Vec<String> = g
            .processes
            .iter()
            .take(SHOWN)
            .map(|pr| {
                let inner = match pr.nspid.as_slice() {
                    [_, .., last] if pr.nspid.len() > 1 => format!(" (PID {last} inside)"),
                    _ => String::new(),
                };
                format!("{} {}{inner}", pr.pid, pr.name)
            })
            .collect();
        if g.processes.len() > SHOWN {
            names.push(format!("and {} more", g.processes.len() - SHOWN));
        }
        let _ = writeln!(s, "  PID {}", names.join(", "));
        let cgroups: Vec<&str> = g.cgroups.iter().take(3).map(|c| c.as_str()).collect();
        let _ = writeln!(
            s,
            "  cgroup {}{}",
            cgroups.join(", "),
            if g.cgroups.len() > 3 {
                format!(" and {} more", g.cgroups.len() - 3)
            } else {
                String::new()
            }
        );
    }
    if !p.unreadable.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{}",
            format!(
                "{} process{} nsx could not read",
                p.unreadable.len(),
                if p.unreadable.len() == 1 { "" } else { "es" }
            )
            .bold()
        );
        for u in p.unreadable.iter().take(SHOWN) {
            let _ = writeln!(s, "  PID {} {}: {}", u.pid, u.name, u.error);
        }
        if p.unreadable.len() > SHOWN {
            let _ = writeln!(s, "  and {} more", p.unreadable.len() - SHOWN);
        }
        if !p.as_root {
            let _ = writeln!(s, "  fix: run it as root to see every process: sudo nsx ps");
        }
    }
    s
}
