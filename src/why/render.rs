//! `nsx why` as text. Reads nothing: everything comes from the report.

use std::fmt::Write;

use colored::Colorize;

use super::{Judgement, Why};

pub fn why(w: &Why) -> String {
    let p = &w.process;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}",
        format!("nsx why {} {} · {}", p.pid, w.operation, p.name).bold()
    );
    let _ = writeln!(
        s,
        "  euid {}, fsuid {}, fsgid {}{}; user namespace {}{}",
        p.euid,
        p.fsuid,
        p.fsgid,
        if p.groups.is_empty() {
            String::new()
        } else {
            format!(", groups {}", crate::lessons::join(&p.groups))
        },
        p.user_ns.map_or("?".into(), |n| format!("user:[{n}]")),
        if p.in_initial() {
            " (the initial one)".to_string()
        } else {
            format!(", uid_map {}", p.uid_map.join("; "))
        }
    );
    let _ = writeln!(
        s,
        "  CapEff {}; NoNewPrivs {}; Seccomp {}, Seccomp_filters {}; security label {}",
        crate::caps::CapSet::new(p.cap_eff).summary(),
        p.no_new_privs
            .map_or("-".into(), |b| u8::from(b).to_string()),
        p.seccomp.map_or("-".into(), crate::doctor::seccomp_mode),
        p.seccomp_filters.map_or("-".into(), |n| n.to_string()),
        p.lsm_label.as_deref().unwrap_or("none")
    );
    if let Some(f) = &w.file {
        let _ = writeln!(
            s,
            "  {}: mode {:o}, owner {}, group {}",
            f.path,
            f.mode & 0o7777,
            f.uid,
            f.gid
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{}",
        "layers, in the order the kernel asks them".bold().cyan()
    );
    for l in &w.layers {
        let mark = match l.judgement {
            Judgement::Refuses => "✗ refuses".red().bold(),
            Judgement::Could => "? could  ".yellow().bold(),
            Judgement::Cannot => "✓ cannot ".green(),
        };
        let _ = writeln!(s, "  {mark}  {:<13} {}", l.id, l.why);
        if let Some(fix) = &l.fix {
            let _ = writeln!(s, "  {:<9}  {:<13} fix: {fix}", "", "");
        }
    }
    let _ = writeln!(s);
    let verdict = match w.suspects.as_slice() {
        [] => "no layer nsx can see refuses it: the errno came from the call's own rules (its man page's ERRORS), or a layer /proc does not show (Landlock, a BPF LSM)".to_string(),
        [one] => format!("the layer that said no: {one}"),
        many => format!(
            "the layers that may have said no: {} (the kernel asks them in this order: the first that refuses answers)",
            many.join(", ")
        ),
    };
    let _ = writeln!(s, "{}", verdict.bold());
    s
}
