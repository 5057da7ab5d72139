//! /proc/<pid>/cgroup in its three shapes, as pure functions over text.
//!
//! cgroups(7): one line per hierarchy, `hierarchy-ID:controller-list:cgroup-path`.
//! - cgroup v1: one line per mounted hierarchy, `4:memory:/user.slice`, with named
//!   hierarchies (`1:name=systemd:/...`) and co-mounted controllers (`2:cpu,cpuacct:/`).
//! - cgroup v2 (unified): a single line `0::/user.slice/...`.
//! - hybrid: both, the v2 line last (systemd's "hybrid" layout, and this project's
//!   development machines).
//!
//! The path is shown relative to the *reader's* cgroup namespace root
//! (cgroup_namespaces(7)): that is the whole cgroupns lesson.

use std::path::{Path, PathBuf};

use procfs::process::MountInfos;
use serde::{Deserialize, Serialize};

/// One line of /proc/<pid>/cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupLine {
    /// The hierarchy ID (0 for v2).
    pub hierarchy: u32,
    /// v1: the controllers bound to the hierarchy, or `name=...` for a named one.
    /// Empty for v2.
    pub controllers: Vec<String>,
    /// The cgroup's path from the reader's cgroup-namespace root.
    pub path: String,
}

/// Which cgroup layout a /proc/<pid>/cgroup file shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupFormat {
    V1,
    Hybrid,
    V2,
}

impl CgroupFormat {
    pub fn describe(self) -> &'static str {
        match self {
            CgroupFormat::V1 => "cgroup v1: one line per hierarchy",
            CgroupFormat::Hybrid => "hybrid: v1 hierarchy lines plus the v2 line 0::",
            CgroupFormat::V2 => "cgroup v2: the single unified line 0::",
        }
    }
}

impl CgroupLine {
    /// True for the unified (v2) hierarchy's line.
    pub fn is_v2(&self) -> bool {
        self.hierarchy == 0 && self.controllers.is_empty()
    }

    /// "memory", "cpu,cpuacct", "name=systemd", or "v2" for the unified hierarchy.
    pub fn name(&self) -> String {
        if self.is_v2() {
            "v2".to_string()
        } else {
            self.controllers.join(",")
        }
    }

    /// How many directories below the root the cgroup is ("/" is 0).
    pub fn depth(&self) -> usize {
        self.path.split('/').filter(|c| !c.is_empty()).count()
    }

    /// The line as the file shows it.
    pub fn text(&self) -> String {
        format!(
            "{}:{}:{}",
            self.hierarchy,
            self.controllers.join(","),
            self.path
        )
    }

    /// The options that select this hierarchy in mount(2): v1 names its controllers (a
    /// named hierarchy needs "none" too, or all free controllers would be implied);
    /// `None` for v2, which has only one hierarchy.
    pub fn mount_options(&self) -> Option<String> {
        if self.is_v2() {
            None
        } else if self.controllers.iter().all(|c| c.starts_with("name=")) {
            Some(format!("none,{}", self.controllers.join(",")))
        } else {
            Some(self.controllers.join(","))
        }
    }
}

/// Parses /proc/<pid>/cgroup text. The path may itself contain ':' (only the first two
/// separate fields).
pub fn parse_cgroup(text: &str) -> Result<Vec<CgroupLine>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("{line:?} is not hierarchy-ID:controllers:path"));
            };
            let hierarchy = id
                .parse()
                .map_err(|_| format!("{line:?}: hierarchy ID {id:?} is not a number"))?;
            if !path.starts_with('/') {
                return Err(format!("{line:?}: the path does not start with '/'"));
            }
            Ok(CgroupLine {
                hierarchy,
                controllers: ctrl
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path: path.to_string(),
            })
        })
        .collect()
}

/// The layout the lines come from; `None` for an empty file.
pub fn format_of(lines: &[CgroupLine]) -> Option<CgroupFormat> {
    let v2 = lines.iter().any(CgroupLine::is_v2);
    let v1 = lines.iter().any(|l| !l.is_v2());
    match (v1, v2) {
        (true, true) => Some(CgroupFormat::Hybrid),
        (true, false) => Some(CgroupFormat::V1),
        (false, true) => Some(CgroupFormat::V2),
        (false, false) => None,
    }
}

/// Where the cgroup of `line` is in the reader's filesystem: the mount point of its
/// hierarchy (found in `mounts`, a mountinfo table) joined with the path below that
/// mount's root. `None` when the hierarchy is not mounted or the cgroup is outside the
/// mounted subtree.
pub fn cgroup_dir(mounts: &MountInfos, line: &CgroupLine) -> Option<PathBuf> {
    mounts.0.iter().find_map(|m| {
        let matches = if line.is_v2() {
            m.fs_type == "cgroup2"
        } else {
            m.fs_type == "cgroup"
                && line.controllers.iter().all(|c| match c.split_once('=') {
                    Some(("name", name)) => {
                        m.super_options.get("name") == Some(&Some(name.to_string()))
                    }
                    _ => m.super_options.contains_key(c.as_str()),
                })
        };
        if !matches {
            return None;
        }
        let root = m.root.trim_end_matches('/');
        let rel = line.path.strip_prefix(root)?;
        if !(rel.is_empty() || rel.starts_with('/')) {
            return None;
        }
        Some(m.mount_point.join(rel.trim_start_matches('/')))
    })
}

/// The line whose cgroup is nested deepest, where a cgroup namespace changes the most;
/// on a tie the v2 line, then the first listed. Only lines whose hierarchy is mounted
/// (so both sides can look at the directory) count.
pub fn deepest_mounted<'a>(lines: &'a [CgroupLine], mounts: &MountInfos) -> Option<&'a CgroupLine> {
    let mut best: Option<&CgroupLine> = None;
    for line in lines {
        if cgroup_dir(mounts, line).is_none() {
            continue;
        }
        best = match best {
            None => Some(line),
            Some(b) if line.depth() > b.depth() => Some(line),
            Some(b) if line.depth() == b.depth() && line.is_v2() && !b.is_v2() => Some(line),
            keep => keep,
        };
    }
    best
}

/// `path` joined below the directory `dir` ("/" stays `dir`).
pub fn below(dir: &Path, path: &str) -> PathBuf {
    dir.join(path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::FromRead;

    const V1: &str = "\
12:pids:/user.slice/user-1000.slice/session-2.scope
11:cpu,cpuacct:/user.slice
4:memory:/user.slice/user-1000.slice/session-2.scope
1:name=systemd:/user.slice/user-1000.slice/session-2.scope
";

    /// This project's development machines: v1 controllers, a v2 line, memory nested.
    const HYBRID: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/7764eb593d42911a78720a0248c33bdb
2:cpuacct:/
1:cpu:/
0::/
";

    const V2: &str = "0::/user.slice/user-1000.slice/session-2.scope\n";

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
47 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
48 47 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
49 47 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
52 47 0:33 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
56 47 0:37 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
57 47 0:38 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
58 47 0:39 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    fn mounts(text: &str) -> MountInfos {
        MountInfos::from_read(text.as_bytes()).unwrap()
    }

    #[test]
    fn v1_lines_keep_their_controllers() {
        let lines = parse_cgroup(V1).unwrap();
        assert_eq!(lines.len(), 4);
        assert_eq!(format_of(&lines), Some(CgroupFormat::V1));
        assert_eq!(lines[1].controllers, ["cpu", "cpuacct"]);
        assert_eq!(lines[1].name(), "cpu,cpuacct");
        assert_eq!(lines[1].mount_options().as_deref(), Some("cpu,cpuacct"));
        assert_eq!(lines[3].name(), "name=systemd");
        assert_eq!(
            lines[3].mount_options().as_deref(),
            Some("none,name=systemd")
        );
        assert_eq!(lines[2].depth(), 3);
        assert!(lines.iter().all(|l| !l.is_v2()));
    }

    #[test]
    fn hybrid_has_both_kinds_of_line() {
        let lines = parse_cgroup(HYBRID).unwrap();
        assert_eq!(format_of(&lines), Some(CgroupFormat::Hybrid));
        let v2 = lines.iter().find(|l| l.is_v2()).unwrap();
        assert_eq!(v2.text(), "0::/");
        assert_eq!(v2.mount_options(), None);
        // The nested memory line is the one a cgroup namespace changes.
        let best = deepest_mounted(&lines, &mounts(MOUNTINFO)).unwrap();
        assert_eq!(best.name(), "memory");
        assert_eq!(
            cgroup_dir(&mounts(MOUNTINFO), best).unwrap(),
            Path::new("/sys/fs/cgroup/memory/process_api/7764eb593d42911a78720a0248c33bdb")
        );
        let systemd = lines.iter().find(|l| l.name() == "name=systemd").unwrap();
        assert_eq!(
            cgroup_dir(&mounts(MOUNTINFO), systemd).unwrap(),
            Path::new("/sys/fs/cgroup/systemd")
        );
    }

    #[test]
    fn v2_is_a_single_unified_line() {
        let lines = parse_cgroup(V2).unwrap();
        assert_eq!(format_of(&lines), Some(CgroupFormat::V2));
        assert_eq!(lines.len(), 1);
        assert!(lines[0].is_v2());
        assert_eq!(lines[0].name(), "v2");
        let m = mounts("30 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n");
        assert_eq!(
            cgroup_dir(&m, &lines[0]).unwrap(),
            Path::new("/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope")
        );
        assert_eq!(deepest_mounted(&lines, &m), Some(&lines[0]));
    }

    #[test]
    fn inside_a_cgroup_namespace_every_path_is_the_root() {
        let inside = parse_cgroup("4:memory:/\n1:name=systemd:/\n0::/\n").unwrap();
        assert!(inside.iter().all(|l| l.path == "/" && l.depth() == 0));
    }

    #[test]
    fn a_mount_of_a_subtree_resolves_below_its_root() {
        let line = parse_cgroup("0::/kubepods/pod1/ctr\n").unwrap().remove(0);
        let m = mounts("30 22 0:26 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        assert_eq!(
            cgroup_dir(&m, &line).unwrap(),
            Path::new("/sys/fs/cgroup/pod1/ctr")
        );
        let elsewhere = parse_cgroup("0::/kubepodsX/a\n").unwrap().remove(0);
        assert_eq!(cgroup_dir(&m, &elsewhere), None);
        let unmounted = parse_cgroup("3:cpuset:/\n").unwrap().remove(0);
        assert_eq!(cgroup_dir(&mounts(MOUNTINFO), &unmounted), None);
    }

    #[test]
    fn paths_may_contain_colons_and_garbage_is_an_error() {
        let l = parse_cgroup("0::/a:b\n").unwrap().remove(0);
        assert_eq!(l.path, "/a:b");
        assert!(parse_cgroup("memory:/x\n").is_err());
        assert!(parse_cgroup("x:memory:/x\n").is_err());
        assert!(parse_cgroup("4:memory:relative\n").is_err());
        assert_eq!(format_of(&parse_cgroup("").unwrap()), None);
    }
}
