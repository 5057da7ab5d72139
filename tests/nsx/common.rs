//! Running nsx, gating privileged tests, and making output stable for snapshots.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn nsx() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nsx"));
    cmd.env("NO_COLOR", "1").env_remove("CLICOLOR_FORCE");
    cmd
}

pub fn run(args: &[&str]) -> Output {
    nsx().args(args).output().expect("run nsx")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

/// Held by every test that runs the cpu lesson or times something (the cost lesson).
///
/// The cpu lesson's probe spins one CPU for half a second at the highest weight, as it
/// should: that is what makes its comparison hold on a busy machine. Several at once
/// (or one beside a timing lesson) would starve the rest of this 2-core machine and
/// turn other tests' timings into noise; one at a time, they leave a core free.
static CPU_HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn cpu_heavy() -> std::sync::MutexGuard<'static, ()> {
    CPU_HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when the test may run; prints why it skips otherwise. Under
/// NSX_REQUIRE_PRIVILEGED=1 (set by .ci/run) a skip is a failure.
pub fn privileged(test: &str) -> bool {
    if is_root() {
        return true;
    }
    let why = format!("{test}: skipped, it needs root (run the tests with sudo to include it)");
    if std::env::var("NSX_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{why}, and NSX_REQUIRE_PRIVILEGED=1 forbids skipping");
    }
    eprintln!("{why}");
    false
}

/// Every lesson this build has, in curriculum order (`nsx lessons --format json`).
pub fn lesson_ids() -> Vec<String> {
    let out = run(&["lessons", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "nsx lessons: {}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("a JSON list");
    v.as_array()
        .expect("a JSON list")
        .iter()
        .map(|l| l["id"].as_str().expect("an id").to_string())
        .collect()
}

/// Runs `nsx lesson <id> --format json` and returns the report, asserting exit 0.
pub fn lesson_json(id: &str, extra: &[&str]) -> Value {
    let mut args = vec!["lesson", id, "--format", "json"];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "nsx lesson {id}: stderr:\n{}\nstdout:\n{}",
        stderr(&out),
        stdout(&out)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON report")
}

/// Asserts the report is ok and has every named fact, holding.
pub fn assert_facts(report: &Value, names: &[&str]) {
    let facts = report["facts"].as_array().expect("facts array");
    for name in names {
        let fact = facts
            .iter()
            .find(|f| f["id"] == *name)
            .unwrap_or_else(|| panic!("missing fact {name}: {report:#}"));
        assert_eq!(fact["holds"], true, "fact {name} does not hold: {fact:#}");
    }
    assert_eq!(report["ok"], true, "report not ok: {report:#}");
    assert!(facts.iter().all(|f| f["holds"] == true));
}

/// Volatile values that appear in a report: PIDs, namespace inodes, host counts.
fn volatile_numbers(v: &Value, key: &str, out: &mut BTreeSet<u64>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                volatile_numbers(child, k, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| volatile_numbers(i, key, out)),
        Value::Number(n) => {
            let volatile_key = is_volatile_key(key, n);
            if let Some(x) = n.as_u64() {
                // Small numbers (PID 1, "1 process", exit statuses) are the lesson: keep them.
                if volatile_key && x >= 10 {
                    out.insert(x);
                }
            }
        }
        _ => {}
    }
}

/// `nsx4242h` / `nsx4242c`: the veth ends of an nsx run (pid 4242).
pub fn is_nsx_veth(name: &str) -> bool {
    regex::Regex::new(r"^nsx\d+[hc]$").unwrap().is_match(name)
}

/// The host's interfaces (this test process runs in the host's network namespace),
/// without the veth ends of nsx runs, which come and go while tests run in parallel.
pub fn host_interfaces() -> Vec<String> {
    std::fs::read_to_string("/proc/self/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split_once(':')?.0.trim().to_string()))
        .filter(|n| !is_nsx_veth(n))
        .collect()
}

/// True when `names`, less nsx veth ends, is the host's list of interfaces.
fn is_host_list(names: &[String]) -> bool {
    let rest: Vec<String> = names.iter().filter(|n| !is_nsx_veth(n)).cloned().collect();
    !rest.is_empty() && rest == host_interfaces()
}

/// A number under this key is a PID, an inode or a host count.
fn is_volatile_key(key: &str, n: &serde_json::Number) -> bool {
    matches!(
        key,
        "pid"
            | "ppid"
            | "nspid"
            | "getpid"
            | "host_pid"
            | "cloned_pid"
            | "count"
            | "first"
            | "inside"
            | "host"
            | "host_reads"
            | "before"
            | "during"
            | "listed"
            | "proc_self_pid"
            | "ipc_key"
            | "key"
            | "cpid"
            | "lspid"
            | "ino"
            | "inside_ino"
            | "host_ino"
    ) || key.chars().all(|c| c.is_ascii_lowercase())
        && n.as_u64().is_some_and(|x| x > 4_000_000_000)
}

/// Text rules shared by both formats: host-specific names and numbers become placeholders.
pub fn stabilize_text(text: &str, numbers: &BTreeSet<u64>) -> String {
    use std::sync::OnceLock;
    static HOSTNAME: OnceLock<String> = OnceLock::new();
    static RULES: OnceLock<Vec<(regex::Regex, &'static str)>> = OnceLock::new();
    let hostname = HOSTNAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .to_string()
    });
    let rules = RULES.get_or_init(|| {
        let rules: &[(&str, &'static str)] = &[
            // net: veth ends named after nsx's pid, the probe's pid, random tokens.
            (r"\bnsx\d+([hc])\b", "nsx[PID]$1"),
            (r"\bnetns \d+", "netns [PID]"),
            (r"\b0x[0-9a-f]{8}\b", "0x[TOKEN]"),
            (
                r"\b(cgroup|ipc|mnt|net|pid|time|user|uts):\[\d+\]",
                "$1:[INODE]",
            ),
            (r"/proc/\d+", "/proc/[PID]"),
            (r"(clone\([^)]*\)) = \d+", "$1 = [PID]"),
            // A temporary directory: the run (PID and start time) and a random part.
            (
                r"nsx-\d+-\d+-([a-z]+)-[a-z2-7]{8}\b",
                "nsx-[RUN]-$1-[RANDOM]",
            ),
            // What nsx names after its run: `nsx-<pid>-<start>-` (older: `nsx-<pid>-`).
            (r"nsx-\d+-(?:\d+-)?", "nsx-[PID]-"),
            (r"\(it was [^)]*\)", "(it was [HOST-PROPAGATION])"),
            (
                r"real host's / is [a-z0-9: ]+\.",
                "real host's / is [HOST-PROPAGATION].",
            ),
            (r"\b0 \d+ 1\b", "0 [UID] 1"),
            // Timings and the bars drawn from them.
            (r"\b\d+(\.\d+)? µs\b", "[T] µs"),
            (r"[█▌]+", "[BAR]"),
            (
                r"\((over|under) a millisecond\)",
                "([OVER/UNDER] a millisecond)",
            ),
            // Where nsx's own cgroup sits in this host's hierarchy.
            (
                r"/sys/fs/cgroup/(\S*?)/?nsx-",
                "/sys/fs/cgroup/[OWN-CGROUP]/nsx-",
            ),
            // rootfs: the host's busybox, its root directory, inodes and checksums.
            (r"BusyBox v[^()]*\([^)]*\)", "BusyBox [VERSION]"),
            (r"\b\d+ applets", "[N] applets"),
            (r"\b\d+ entries, \d+ bytes", "[N] entries, [N] bytes"),
            (r"\b\d+ entries", "[N] entries"),
            (
                r"checksum [0-9a-f]{16} before and [0-9a-f]{16} after",
                "checksum [HASH] before and [HASH] after",
            ),
            (r"\(\d+:\d+\)", "([DEV]:[INODE])"),
            (r"inode \d+", "inode [INODE]"),
            (r"host has \d+", "host has [N]"),
            (
                r"mounts in mountinfo( +)\d+( +)\d\d+",
                "mounts in mountinfo$1[N]$2[N]",
            ),
            (r"mounts in mountinfo( +)\d+", "mounts in mountinfo$1[N]"),
            // init: signal masks and the host PIDs of processes inside the namespace.
            (r"SigCgt [0-9a-f]{16}", "SigCgt [MASK]"),
            (r"\((\d+ ?)+; states", "([PIDS]; states"),
            (r"grandchild \(PID \d+\)", "grandchild (PID [N])"),
            (r"orphaned grandchild( +)\d+", "orphaned grandchild$1[N]"),
            (r"PPid \d\d+", "PPid [N]"),
            // ipc: nsx's key carries its PID; object ids depend on what the host made
            // before.
            (r"\b0x6e[0-9a-f]{6}\b", "0x6e[PID]"),
            (r"\b(shmid|msqid) \d+", "$1 [ID]"),
            // time: clock readings (the offsets, whole seconds, stay), dates, intervals.
            (r"\b\d+ d \d\d:\d\d:\d\d\b", "[CLOCK]"),
            (r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\b", "[DATE]"),
            (r"\b\d+\.\d{3} ms\b", "[T] ms"),
            (r"\b\d+\.\d{6}\b", "[T]"),
        ];
        rules
            .iter()
            .map(|(re, rep)| (regex::Regex::new(re).expect("valid regex"), *rep))
            .collect()
    });
    let mut s = text.to_string();
    // The host's interface list, with any nsx veth ends listed after it.
    let host_list = host_interfaces()
        .iter()
        .map(|n| regex::escape(n))
        .collect::<Vec<_>>()
        .join(" ");
    if !host_list.is_empty() {
        s = regex_replace(
            &s,
            &format!(r"\b{host_list}( nsx\d+[hc])*\b"),
            "[HOST-INTERFACES]",
        );
    }
    // The same list as "name STATE address" items (a fact's claim).
    let item = r" (?:UP|DOWN|\?)(?: [0-9./]+)?";
    let host_items = host_interfaces()
        .iter()
        .map(|n| format!("{}{item}", regex::escape(n)))
        .collect::<Vec<_>>()
        .join(", ");
    if !host_items.is_empty() {
        s = regex_replace(
            &s,
            &format!(r"\b{host_items}(?:, nsx\d+[hc]{item})*"),
            "[HOST-INTERFACES]",
        );
    }
    // Ports the kernel chose (a listener on port 0, a client's source port); 8080 is
    // nsx's own choice and stays.
    s = regex::Regex::new(r"\b((?:\d{1,3}\.){3}\d{1,3}):(\d+)\b")
        .unwrap()
        .replace_all(&s, |c: &regex::Captures| {
            if &c[2] == "8080" {
                c[0].to_string()
            } else {
                format!("{}:[PORT]", &c[1])
            }
        })
        .into_owned();
    for (re, rep) in rules {
        s = re.replace_all(&s, *rep).into_owned();
    }
    // cgroupns: where nsx (like this test) sits in the host's cgroup tree.
    for path in own_cgroup_paths() {
        s = s.replace(&path, "[HOST-CGROUP]");
    }
    // One alternation for all volatile numbers, longest first, compiled once per set.
    thread_local! {
        static NUMBERS: std::cell::RefCell<Option<(BTreeSet<u64>, Option<regex::Regex>)>> =
            const { std::cell::RefCell::new(None) };
    }
    // A volatile number (a count that happens to be 127) must not rewrite an IPv4
    // address: set the addresses aside while numbers are replaced.
    let ip = regex::Regex::new(r"\b\d{1,3}(?:\.\d{1,3}){3}\b").unwrap();
    let addresses: Vec<String> = ip.find_iter(&s).map(|m| m.as_str().to_string()).collect();
    s = ip.replace_all(&s, "\u{1}").into_owned();
    s = NUMBERS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.as_ref().is_none_or(|(set, _)| set != numbers) {
            let alternation: Vec<String> = numbers.iter().rev().map(|n| n.to_string()).collect();
            let re = (!alternation.is_empty()).then(|| {
                regex::Regex::new(&format!(r"\b(?:{})\b", alternation.join("|")))
                    .expect("valid regex")
            });
            *cache = Some((numbers.clone(), re));
        }
        match cache.as_ref().and_then(|(_, re)| re.as_ref()) {
            Some(re) => re.replace_all(&s, "[N]").into_owned(),
            None => s,
        }
    });
    for a in &addresses {
        s = s.replacen('\u{1}', a, 1);
    }
    if !hostname.is_empty() {
        s = regex_replace(
            &s,
            &format!(
                r#"(host sees[^\n]*\n[^\n]*hostname[^\n]*?  ){}\b"#,
                regex::escape(hostname)
            ),
            "$1[HOST]",
        );
        s = regex_replace(
            &s,
            &format!(r#""{}""#, regex::escape(hostname)),
            "\"[HOST]\"",
        );
    }
    s
}

/// The non-root cgroup paths of this test process (nsx inherits them), longest first.
fn own_cgroup_paths() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut paths: Vec<String> = text
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .filter(|p| *p != "/")
        .map(str::to_string)
        .collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
    paths.dedup();
    paths
}

/// The lessons whose output [`stabilize_measurements`] and the other limit rules apply to.
const LIMIT_LESSONS: &[&str] = &["memory", "cpu", "pids"];

/// Numbers the limit lessons print as settings (limits written, the page size and page
/// count, the spin, the period, the tolerance, the tick, the weights, the fork cap). A
/// PID or a host count that happens to equal one must not hide it (in the v2 VM, PIDs
/// and counts are small); those are masked where they appear instead.
const LIMIT_SETTINGS: &[u64] = &[
    32 << 20,
    64 << 20,
    4096,
    16384,
    20_000,
    100_000,
    102_400,
    10_000,
    1024,
    500,
    100,
    50,
    10,
    12,
];

/// Whether a human output is one of the limit lessons' (its header line names it).
fn is_limit_lesson_text(text: &str) -> bool {
    LIMIT_LESSONS
        .iter()
        .any(|id| text.starts_with(&format!("nsx lesson {id} ")))
}

/// The limit lessons' measurements (sizes, counters, shares, durations) become
/// placeholders; their settings (the limits written, the 500 ms spin, the 100 ms period,
/// the ±50 % tolerance) and the counts the lesson determines (forks, pids.current,
/// oom_kill) stay, and so do the verdicts. Only for those lessons' reports: other lessons
/// print durations that are settings.
fn stabilize_measurements(text: &str) -> String {
    let mut s = text.to_string();
    for (re, rep) in [
        // Where the lesson cgroup's parent is (no "nsx-" in the path, unlike the rule above;
        // nsx's own path may already read [HOST-CGROUP]).
        (
            r"(at /sys/fs/cgroup/(?:memory|cpu|cpuacct|pids))(?:/[^\s'\x22,)]*|\[HOST-CGROUP\])? and used",
            "$1/[OWN-CGROUP] and used",
        ),
        // The probe's PID, written into the lesson cgroup's membership file (already [N]
        // unless it happened to equal a setting the lesson keeps).
        (
            r"echo (?:\d+|\[N\]) > (\S*/cgroup\.procs)\b",
            "echo [PID] > $1",
        ),
        (
            r"own subtree /sys/fs/cgroup/\S*",
            "own subtree /sys/fs/cgroup/[BASE]/nsx",
        ),
        (r"(?:\b\d+|\[N\])(\.\d+)? (MiB|KiB)\b", "[SIZE]"),
        (
            r"(memory\.failcnt|memory\.events max|nr_periods|nr_throttled) (?:\d+|\[N\])",
            "$1 [N]",
        ),
        (
            r"throttled in (?:\d+|\[N\]) of (?:\d+|\[N\]) periods",
            "throttled in [N] of [N] periods",
        ),
    ] {
        s = regex_replace(&s, re, rep);
    }
    // Shares measured; the tolerance (±50 %) is a setting.
    s = regex::Regex::new(r"(±)?(?:\b\d+|\[N\]) %")
        .unwrap()
        .replace_all(&s, |c: &regex::Captures| match c.get(1) {
            Some(_) => c[0].to_string(),
            None => "[PCT] %".to_string(),
        })
        .into_owned();
    // Durations measured; the 500 ms spin, the 100 ms period and 10 ms ticks are settings.
    regex::Regex::new(r"(spins? for |per )?(?:\b\d+|\[N\]) ms\b( spin| period| ticks)?")
        .unwrap()
        .replace_all(&s, |c: &regex::Captures| {
            if c.get(1).is_some() || c.get(2).is_some() {
                c[0].to_string()
            } else {
                "[MS]".to_string()
            }
        })
        .into_owned()
}

/// A note that a run removed a cgroup left by a killed one: whether a run sees one depends
/// on what ran before it (another test's SIGKILL), so snapshots leave it out.
const SWEEP_NOTE: &str = "removed a cgroup left by an nsx run that was killed";

/// Keys whose whole value is a measurement in the limit lessons.
const MEASURED: &[&str] = &[
    "measured",
    "measured_before",
    "expected_us",
    "band_us",
    "usage_us",
];

/// The limit lessons' cgroup rows show a path as /proc/…/cgroup does: nsx's own cgroup
/// (host specific) becomes [OWN-CGROUP]; the lesson cgroup's name stays.
fn is_cgroup_row(label: &str) -> bool {
    label.contains("hierarchy (/proc/…/cgroup)") || label.contains("(/proc/…/cgroup, 0:: line)")
}

fn stable_cgroup_value(v: &str) -> String {
    match v.find("/nsx-") {
        Some(i) => format!("[OWN-CGROUP]{}", &v[i..]),
        // "/" or nsx's own path, which the rules above may have made [HOST-CGROUP].
        None if v.starts_with('/') || v.starts_with("[HOST-CGROUP]") => "[OWN-CGROUP]".to_string(),
        None => v.to_string(),
    }
}

/// JSON parts of the limit lessons: measurements, what nsx read from cgroup files (the
/// counters), cgroup rows, and the sweep note.
fn stabilize_limits_json(v: &mut Value) {
    fn measured(v: &mut Value) {
        match v {
            Value::Number(_) => *v = Value::String("[MEASURED]".into()),
            Value::Array(a) => a.iter_mut().for_each(measured),
            Value::Object(m) => m.values_mut().for_each(measured),
            _ => {}
        }
    }
    match v {
        Value::Object(m) => {
            if m.get("op").and_then(Value::as_str) == Some("read") {
                m.insert("value".into(), Value::String("[READ]".into()));
            }
            if m.get("label")
                .and_then(Value::as_str)
                .is_some_and(is_cgroup_row)
            {
                for side in ["host", "container"] {
                    if let Some(Value::String(s)) = m.get_mut(side) {
                        *s = stable_cgroup_value(s);
                    }
                }
            }
            for (k, child) in m.iter_mut() {
                if MEASURED.contains(&k.as_str()) {
                    measured(child);
                } else {
                    stabilize_limits_json(child);
                }
            }
        }
        Value::Array(a) => {
            a.retain(|x| !x.as_str().is_some_and(|s| s.contains(SWEEP_NOTE)));
            a.iter_mut().for_each(stabilize_limits_json);
        }
        Value::String(s) => *s = stabilize_measurements(s),
        _ => {}
    }
}

/// Human lines of the limit lessons: the sweep note goes, cgroup rows as in the JSON.
fn stabilize_limits_human(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.contains(SWEEP_NOTE) {
            if out.last().is_some_and(|l| l.is_empty()) {
                out.pop();
            }
            continue;
        }
        let end = line
            .find("cgroup)")
            .map(|i| i + "cgroup)".len())
            .or_else(|| line.find("0:: line)").map(|i| i + "0:: line)".len()));
        match end {
            Some(end) if is_cgroup_row(line) => {
                let (label, values) = line.split_at(end);
                let values: Vec<String> = values
                    .split("  ")
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| stable_cgroup_value(v.trim()))
                    .collect();
                out.push(format!("{label}  {}", values.join("  ")));
            }
            _ => out.push(line.to_string()),
        }
    }
    let mut s = out.join("\n");
    if text.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn regex_replace(s: &str, re: &str, rep: &str) -> String {
    regex::Regex::new(re)
        .expect("valid regex")
        .replace_all(s, rep)
        .into_owned()
}

/// A JSON report with its volatile values replaced, ready for a snapshot.
pub fn stable_json(report: &Value) -> Value {
    let mut numbers = BTreeSet::new();
    volatile_numbers(report, "", &mut numbers);
    let limit_lesson = LIMIT_LESSONS.contains(&report["lesson"].as_str().unwrap_or(""));
    // A limit lesson's settings stay, even when a PID or a host count equals one.
    if limit_lesson {
        for k in LIMIT_SETTINGS {
            numbers.remove(k);
        }
    }
    fn walk(v: &Value, key: &str, numbers: &BTreeSet<u64>) -> Value {
        match v {
            Value::Object(m) => {
                let mut out: serde_json::Map<String, Value> = m
                    .iter()
                    .map(|(k, c)| (k.clone(), walk(c, k, numbers)))
                    .collect();
                // A System V IPC object (key, id, perms, ...): its id depends on what the
                // namespace held before; the key is what the lesson is about.
                if m.contains_key("key") && m.contains_key("perms") && m.contains_key("id") {
                    out.insert("id".into(), Value::String("[ID]".into()));
                }
                Value::Object(out)
            }
            // rootfs: the host's own root listing, devices, inodes and mount counts.
            Value::Array(a) if key == "listing" && a.len() > 12 => {
                Value::String("[HOST-LISTING]".into())
            }
            Value::Number(_) if matches!(key, "dev" | "ino" | "mounts" | "host_mounts") => {
                Value::String("[N]".into())
            }
            Value::String(_) if key == "sigcgt" => Value::String("[MASK]".into()),
            // rootfs: the lower layer's checksums. Only under these keys: other 16-digit
            // hex strings (a CapEff mask) are what their lesson teaches.
            Value::String(s)
                if matches!(key, "before" | "after")
                    && s.len() == 16
                    && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Value::String("[HASH]".into())
            }
            // Lists of the host's interfaces (names, or links with a name) and tables of
            // the host's routes are the host's business.
            Value::Array(a)
                if !a.is_empty() && a.iter().all(|c| c.is_string()) && {
                    let names: Vec<String> =
                        a.iter().map(|c| c.as_str().unwrap().to_string()).collect();
                    is_host_list(&names)
                } =>
            {
                Value::String("[HOST-INTERFACES]".into())
            }
            Value::Array(a)
                if !a.is_empty() && a.iter().all(|c| c["name"].is_string()) && {
                    let names: Vec<String> = a
                        .iter()
                        .map(|c| c["name"].as_str().unwrap().to_string())
                        .collect();
                    is_host_list(&names)
                } =>
            {
                Value::String("[HOST-INTERFACES]".into())
            }
            Value::Array(a)
                if !a.is_empty()
                    && a.iter().all(|c| c["destination"].is_string())
                    && a.iter()
                        .any(|c| !is_nsx_veth(c["dev"].as_str().unwrap_or(""))) =>
            {
                Value::String("[HOST-ROUTES]".into())
            }
            Value::Array(a) => Value::Array(a.iter().map(|c| walk(c, key, numbers)).collect()),
            Value::Number(n) if n.as_u64().is_some_and(|x| numbers.contains(&x)) => {
                Value::String("[N]".into())
            }
            // A kept number (a limit) that is also a PID or a host count here.
            Value::Number(n) if is_volatile_key(key, n) && n.as_u64().is_some_and(|x| x >= 10) => {
                Value::String("[N]".into())
            }
            Value::Number(_) if key.ends_with("_us") => Value::String("[T]".into()),
            // Clock readings and other measured times: the fractional numbers of a report.
            Value::Number(n) if n.is_f64() => Value::String("[T]".into()),
            // IPC ids depend on what the host created before (ids restart in a new
            // namespace, but the key, not the id, is what the lesson is about).
            Value::Number(_) if key == "shmid" || key == "msqid" => Value::String("[ID]".into()),
            Value::String(s)
                if key == "hostname" || key == "host_during" || key == "host_before" =>
            {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                if s == host.trim() {
                    Value::String("[HOST]".into())
                } else {
                    v.clone()
                }
            }
            Value::String(s) => Value::String(stabilize_text(s, numbers)),
            other => other.clone(),
        }
    }
    // The keys of the IPC objects this run made (the ipc lesson names them in `extra`).
    let run_keys: Vec<Value> = report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["extra"].get("ipc_key").cloned())
        .collect();
    let mut out = walk(report, "", &numbers);
    if limit_lesson {
        stabilize_limits_json(&mut out);
    }
    // Host-specific tables nobody asserts on: the host's own cgroup paths, capabilities
    // and System V IPC objects. A view taken from inside a namespace nsx made is the
    // lesson and stays.
    let steps = report["steps"].as_array().cloned().unwrap_or_default();
    for (step, orig) in out["steps"].as_array_mut().into_iter().flatten().zip(steps) {
        let host_ns = |ty: &str| orig["host"]["own_ns"][ty].clone();
        for side in ["host", "container"] {
            let view = &orig[side];
            // The probe's capabilities are nsx's own (the harness's) unless the probe is
            // in a user namespace of its own.
            let probe_in_host_userns = view["probe"]["ns"]["user"] == host_ns("user");
            // /proc/<pid>/cgroup paths are relative to the reader's cgroup namespace.
            let reader_in_host_cgroupns = view["own_ns"]["cgroup"] == host_ns("cgroup");
            let reader_in_host_ipcns = view["own_ns"]["ipc"] == host_ns("ipc");
            let probe = &mut step[side]["probe"];
            if reader_in_host_cgroupns && !probe["cgroup"].is_null() {
                probe["cgroup"] = Value::String("[HOST-SPECIFIC]".into());
            }
            if probe_in_host_userns && !probe["cap_eff"].is_null() {
                probe["cap_eff"] = Value::String("[HOST-SPECIFIC]".into());
            }
            // The host's IPC tables hold whatever else runs there (other tests too):
            // keep only this run's objects.
            if reader_in_host_ipcns {
                // (get_mut: indexing a missing key with [] would insert a null.)
                let ipc = step[side].get_mut("sysvipc");
                if let Some(tables) = ipc.and_then(Value::as_object_mut) {
                    for (name, table) in tables.iter_mut() {
                        let original = view["sysvipc"][name]
                            .as_array()
                            .cloned()
                            .unwrap_or_default();
                        if let Some(rows) = table.as_array_mut() {
                            let mut ours = original.iter().map(|r| run_keys.contains(&r["key"]));
                            rows.retain(|_| ours.next().unwrap_or(false));
                        }
                    }
                    if tables
                        .values()
                        .all(|t| t.as_array().is_some_and(Vec::is_empty))
                    {
                        step[side]
                            .as_object_mut()
                            .expect("a view is an object")
                            .remove("sysvipc");
                    }
                }
            }
            // A lesson's views hold only what it reads: get_mut, as indexing a missing
            // part with [] would insert a null.
            // The lowest host PIDs include kernel threads that come and go.
            if let Some(procs) = step[side].get_mut("processes") {
                if procs["count"].is_string() {
                    procs["first"] = Value::String("[HOST-PIDS]".into());
                }
            }
            if let Some(mounts) = step[side].get_mut("mounts") {
                if mounts["root_propagation"]
                    .as_str()
                    .is_some_and(|p| p != "private")
                {
                    mounts["root_propagation"] = Value::String("[HOST-PROPAGATION]".into());
                }
            }
        }
    }
    let text = renumber_peer_groups(&serde_json::to_string(&out).unwrap());
    serde_json::from_str(&text).unwrap()
}

/// Peer groups (`shared:N`, `master:N`) are numbered by the kernel across the whole
/// machine, so a test running beside other mount-namespace users gets other numbers.
/// What the snapshot pins is which mounts share a group: renumber the groups 1, 2, ...
/// in the order they first appear.
pub fn renumber_peer_groups(text: &str) -> String {
    let re = regex::Regex::new(r"\b(shared|master|propagate_from):(\d+)").unwrap();
    let mut order: Vec<String> = Vec::new();
    re.replace_all(text, |c: &regex::Captures| {
        let id = c[2].to_string();
        let n = match order.iter().position(|o| *o == id) {
            Some(i) => i + 1,
            None => {
                order.push(id);
                order.len()
            }
        };
        format!("{}:{n}", &c[1])
    })
    .into_owned()
}

/// Human output with its volatile values replaced, taken from the same text: the PIDs in
/// `clone(...) = N` lines and `/proc/N`, the host's counts in its column, inodes.
pub fn stable_human(text: &str) -> String {
    let mut numbers = BTreeSet::new();
    for re in [
        r"\) = (\d+)",
        r"/proc/(\d+)",
        r"nsx-(\d+)-",
        r"getpid\(\) = (\d+)",
        r"sees PID (\d+)",
    ] {
        for c in regex::Regex::new(re).unwrap().captures_iter(text) {
            numbers.insert(c[1].parse().unwrap());
        }
    }
    // The host column of count rows (processes, mounts) is the host's own business.
    for re in [
        r"processes listed in /proc +(\d+) +(\d+)?",
        r"mounts in /proc/self/mountinfo +(\d+)",
    ] {
        for c in regex::Regex::new(re).unwrap().captures_iter(text) {
            for i in 1..c.len() {
                if let Some(m) = c.get(i) {
                    let n: u64 = m.as_str().parse().unwrap();
                    if n >= 10 {
                        numbers.insert(n);
                    }
                }
            }
        }
    }
    let settings: &[u64] = if is_limit_lesson_text(text) {
        LIMIT_SETTINGS
    } else {
        &[]
    };
    numbers.retain(|n| *n >= 10 && !settings.contains(n));
    // The mount count inside differs from the host's by what the probe mounted: keep that
    // difference, which is the lesson, and hide only the host's own count.
    let mount_row =
        regex::Regex::new(r"(?m)^(.*mounts in /proc/self/mountinfo +)(\d+)( +)(\d+)$").unwrap();
    let text = mount_row.replace_all(text, |c: &regex::Captures| {
        let (host, inside): (i64, i64) = (c[2].parse().unwrap(), c[4].parse().unwrap());
        let delta = match inside - host {
            0 => "[M]".to_string(),
            d => format!("[M{d:+}]"),
        };
        format!("{}[M]{}{delta}", &c[1], &c[3])
    });
    let s = stabilize_text(&text, &numbers);
    let s = if is_limit_lesson_text(&text) {
        stabilize_measurements(&stabilize_limits_human(&s))
    } else {
        s
    };
    // Column widths follow the widths of the real values; keep the words, not the padding.
    let s = regex_replace(&s, r"(\S)  +", "$1  ");
    let s = realign_temp_dir_headers(&s);
    let s = renumber_peer_groups(&s);
    // Two host-dependent values read a moment apart (a process count) may differ or not:
    // whether such a row is marked ≠ is as volatile as the values themselves.
    let s = regex_replace(&s, r"(?m)^  ≠ (.*  \[N\]  \[N\])$", "    $1");
    // The host's hostname in the host column of any hostname row.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    if hostname.is_empty() {
        return s;
    }
    regex_replace(
        &s,
        &format!(r"(?m)^([ ≠]*hostname  ){}\b", regex::escape(&hostname)),
        "$1[HOST]",
    )
}

/// The column header of a step whose row labels name a temporary directory
/// (`nsx-[RUN]-<what>-[RANDOM]`) is indented by the width of the real, longer name (its
/// PID, start time and random part): indent it by the width of the placeholder labels
/// instead, as the renderer would have (4 + widest label + 2).
fn realign_temp_dir_headers(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    for (i, line) in lines.iter().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if indent < 4 || line.trim().is_empty() || i == 0 || !lines[i - 1].is_empty() {
            continue;
        }
        let rows: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| l.starts_with("  ≠ ") || l.starts_with("    "))
            .copied()
            .collect();
        if !rows.iter().any(|r| r.contains("nsx-[RUN]-")) {
            continue;
        }
        let label_w = rows
            .iter()
            .map(|r| {
                let body: String = r.chars().skip(4).collect();
                body.split("  ").next().unwrap_or("").chars().count()
            })
            .max()
            .unwrap_or(0);
        out[i] = format!("{}{}", " ".repeat(4 + label_w + 2), line.trim_start());
    }
    out.join("\n")
}

/// A private copy of the binary, world-executable, for runs as another user or under a
/// name of its own.
pub fn copy_binary(name: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("nsx-test-bin")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join(name);
    copy_executable(std::path::Path::new(env!("CARGO_BIN_EXE_nsx")), &path);
    (dir, path)
}

/// Copies the program `from` to `to`, mode 0755, so that it can be executed at once.
///
/// A `cp` child writes the copy: this process never holds a descriptor open for writing
/// on it. Such a descriptor (even O_CLOEXEC) is inherited by every child another test
/// thread forks while it is open, and execve(2) of the file fails with ETXTBSY until
/// each of those children has exec'd or exited, which a starved child on a loaded
/// machine may take longer to do than any retry waits.
pub fn copy_executable(from: &std::path::Path, to: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    // (status(), not output(): a pipe's write end would also be inherited by children
    // forked meanwhile, and reading to its end would wait for them.)
    let status = Command::new("cp")
        .arg("--")
        .arg(from)
        .arg(to)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("cp (coreutils)");
    assert!(
        status.success(),
        "cp {} {}: {status} (its message is above)",
        from.display(),
        to.display()
    );
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Spawns `cmd`, retrying while the kernel says ETXTBSY (a program this process wrote
/// is still open for writing in a child forked meanwhile; [`copy_executable`] leaves no
/// such descriptor, so its copies never need this).
pub fn spawn(cmd: &mut std::process::Command) -> std::process::Child {
    for _ in 0..100 {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            other => return other.expect("spawn"),
        }
    }
    panic!("spawn: ETXTBSY for a whole second")
}

/// Spawns the command `make` builds and waits for it, and again while it ends with exit
/// 126 "Text file busy": a wrapper such as setpriv execs the program itself, so spawn()'s
/// retry does not cover it. (Only a program written through a descriptor of this process
/// can be busy; [`copy_binary`]'s copies are not.)
pub fn output_retrying_busy(mut make: impl FnMut() -> std::process::Command) -> Output {
    let mut out = spawn(&mut make()).wait_with_output().expect("wait");
    for _ in 0..100 {
        if !(out.status.code() == Some(126) && stderr(&out).contains("Text file busy")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        out = spawn(&mut make()).wait_with_output().expect("wait");
    }
    out
}

/// An unprivileged uid (and gid) for the tests; setpriv switches to it without an account.
pub const TEST_UID: &str = "4242";

/// Runs `exe args` as uid and gid [`TEST_UID`] with no supplementary groups (setpriv,
/// util-linux), from "/" and with NO_COLOR set, and waits for it.
pub fn run_as_user(exe: &Path, args: &[&str]) -> Output {
    output_retrying_busy(|| {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid",
            TEST_UID,
            "--regid",
            TEST_UID,
            "--clear-groups",
            "--",
        ])
        .arg(exe)
        .args(args)
        .current_dir("/")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd
    })
}

// ------------------------------------------------------------------ what runs leave behind

/// The PID in a name nsx gives what it creates, `nsx-<pid>-<what>` (temp directories,
/// cgroup directories).
fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix("nsx-")?.split('-').next()?.parse().ok()
}

/// PIDs of live processes running `exe`.
pub fn processes_of(exe: &Path) -> BTreeSet<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            (std::fs::read_link(e.path().join("exe")).ok()? == exe).then_some(pid)
        })
        .collect()
}

/// [`processes_of`] `exe`, polled until none is left or `within` has passed: the
/// processes still running then.
pub fn wait_for_no_process_of(exe: &Path, within: Duration) -> BTreeSet<u32> {
    let deadline = Instant::now() + within;
    loop {
        let running = processes_of(exe);
        if running.is_empty() || Instant::now() > deadline {
            return running;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Processes whose parent is `pid` (what an nsx run could have left behind), as their
/// /proc directories.
pub fn children_of(pid: u32) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .to_string();
            (ppid == pid.to_string()).then(|| e.path().display().to_string())
        })
        .collect()
}

/// nsx-<pid>-* directories in the temp dir whose <pid> is one of `pids`.
pub fn temp_dirs_of(pids: &BTreeSet<u32>) -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            owner_pid(&name)
                .is_some_and(|p| pids.contains(&p))
                .then_some(name)
        })
        .collect()
}

/// cgroup directories named nsx-<pid>-* for one of `pids`, at any depth of every
/// hierarchy under /sys/fs/cgroup.
pub fn cgroups_of(pids: &BTreeSet<u32>) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            // Not followed: symlinks (cpu -> cpu,cpuacct) lead to hierarchies listed
            // anyway.
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if owner_pid(&name).is_some_and(|p| pids.contains(&p)) {
                found.push(e.path());
            }
            stack.push(e.path());
        }
    }
    found
}

/// System V objects in this test's IPC namespace (the host's) that an nsx run left
/// behind: a key of nsx's (`0x6e` and a set bit, then random bits: no run can be told
/// from its key) whose creating process is gone (the segment's cpid; the queue's last
/// sender, or while it is empty the creator of the segment with the same key). A live
/// run keeps its probe unreaped until it has removed the probe's objects, so an object
/// of a live run always has its creator in /proc.
pub fn ipc_orphans() -> Vec<String> {
    ipc_orphans_in(
        &std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default(),
        &std::fs::read_to_string("/proc/sysvipc/msg").unwrap_or_default(),
        &|key| key as u32 & 0xff80_0000 == 0x6e80_0000,
    )
}

/// The orphans in the tables `shm` and `msg` (as /proc/sysvipc shows them) whose key
/// `nsx` accepts.
pub fn ipc_orphans_in(shm: &str, msg: &str, nsx: &dyn Fn(i64) -> bool) -> Vec<String> {
    let rows = |text: &str| -> Vec<std::collections::HashMap<String, String>> {
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        lines
            .map(|l| {
                header
                    .iter()
                    .cloned()
                    .zip(l.split_whitespace().map(String::from))
                    .collect()
            })
            .collect()
    };
    let num = |r: &std::collections::HashMap<String, String>, k: &str| -> i64 {
        r.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let present = |pid: i64| pid > 0 && Path::new(&format!("/proc/{pid}")).exists();
    let segments = rows(shm);
    let mut found = Vec::new();
    for r in &segments {
        if nsx(num(r, "key")) && !present(num(r, "cpid")) {
            found.push(format!("shm: {r:?}"));
        }
    }
    for r in rows(msg) {
        let key = num(&r, "key");
        if !nsx(key) {
            continue;
        }
        let creator = match num(&r, "lspid") {
            0 => segments
                .iter()
                .find(|s| num(s, "key") == key)
                .map_or(0, |s| num(s, "cpid")),
            pid => pid,
        };
        if !present(creator) {
            found.push(format!("msg: {r:?}"));
        }
    }
    found
}

/// Host ends `nsx<pid>h` of the veth pairs of `pids` still in this test's network
/// namespace (the host's).
pub fn veths_of(pids: &BTreeSet<u32>) -> Vec<String> {
    pids.iter()
        .map(|pid| format!("nsx{pid}h"))
        .filter(|name| Path::new("/sys/class/net").join(name).exists())
        .collect()
}

/// Everything named after the runs `pids` that nsx creates: temp directories, cgroup
/// directories, veth ends; and System V IPC objects any nsx run left ([`ipc_orphans`]:
/// their keys do not name a run).
pub fn leftovers_of(pids: &BTreeSet<u32>) -> Vec<String> {
    let mut left = temp_dirs_of(pids);
    left.extend(cgroups_of(pids).iter().map(|d| d.display().to_string()));
    left.extend(veths_of(pids));
    left.extend(ipc_orphans());
    left
}

/// Sends `sig` to `pid`, a child this test spawned and has not reaped (so the PID is
/// still its, even if it has exited).
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory preconditions.
    assert_eq!(
        unsafe { libc::kill(pid as i32, sig) },
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// A pseudo-terminal for nsx's standard input, so that --step pauses: the master end
/// (keep it open) and the slave end to hand to the child.
pub fn pty() -> (std::fs::File, Stdio) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors; the name, termios and winsize are optional.
    let ret = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(ret, 0, "openpty: {}", std::io::Error::last_os_error());
    // Not inherited by the processes other tests spawn meanwhile (the child's stdin is a
    // dup2 of the slave, which clears the flag there).
    for fd in [master, slave] {
        // SAFETY: fcntl on descriptors we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: both descriptors are new and owned here.
    unsafe {
        (
            std::fs::File::from_raw_fd(master),
            Stdio::from(OwnedFd::from_raw_fd(slave)),
        )
    }
}

/// Spawns `exe lesson ARGS` with its standard output and error piped.
pub fn spawn_lesson(exe: &Path, args: &[&str]) -> Child {
    spawn(
        Command::new(exe)
            .arg("lesson")
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
}

/// Reads `child`'s standard output line by line up to the first line that starts with
/// `prefix` (the human renderer writes a step in one piece). Returns the lines read, that
/// one last, and the rest of the stream; panics if the output ends first.
pub fn read_until_line(child: &mut Child, prefix: &str) -> (Vec<String>, BufReader<ChildStdout>) {
    let mut reader = BufReader::new(child.stdout.take().expect("stdout piped"));
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        assert!(
            n > 0,
            "nsx ended before a line starting with {prefix:?}: {seen:#?}"
        );
        let found = line.starts_with(prefix);
        seen.push(line.trim_end_matches('\n').to_string());
        if found {
            return (seen, reader);
        }
    }
}

/// The facts of a JSON report that do not hold (or the output itself, when it is not a
/// report), for a failure message.
pub fn failed_facts(stdout: &[u8]) -> String {
    match serde_json::from_slice::<Value>(stdout) {
        Ok(r) => r["facts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["holds"] != true)
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        Err(_) => String::from_utf8_lossy(stdout).into_owned(),
    }
}

/// Runs `exe lesson <id> --format json` `times` times in a row for each of `ids`,
/// asserting that each run succeeds; returns the runs' PIDs.
pub fn lesson_runs_in_turn(exe: &Path, ids: &[&str], times: usize) -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    for id in ids {
        for _ in 0..times {
            let child = spawn_lesson(exe, &[id, "--format", "json"]);
            pids.insert(child.id());
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "nsx lesson {id} failed: {}\n{}",
                stderr(&out),
                failed_facts(&out.stdout)
            );
        }
    }
    pids
}

/// Starts `n` runs of `exe lesson ARGS --format json` at once and waits for them all,
/// asserting that each succeeds; returns each run's PID and report.
pub fn lesson_runs_at_once(exe: &Path, args: &[&str], n: usize) -> Vec<(u32, Value)> {
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    let children: Vec<Child> = (0..n).map(|_| spawn_lesson(exe, &args)).collect();
    children
        .into_iter()
        .map(|child| {
            let pid = child.id();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "concurrent nsx lesson {args:?} failed: {}\n{}",
                stderr(&out),
                failed_facts(&out.stdout)
            );
            let report = serde_json::from_slice(&out.stdout).expect("a JSON report");
            (pid, report)
        })
        .collect()
}
