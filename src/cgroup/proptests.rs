//! Random bytes into every cgroup parser nsx owns: a result or an error naming the file,
//! never a panic.

use std::path::Path;

use proptest::prelude::*;

use super::layout::{parse_mountinfo, parse_proc_cgroup, parse_proc_cgroup_of};
use super::stats::*;

/// Text that looks enough like the real files to reach deep into the parsers: lines of
/// words, numbers, colons, slashes and dashes, plus arbitrary characters.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,200}",
        "([a-z_.]{1,12}( -?[0-9]{1,20}| max| -| [a-z0-9:,/=]{0,16}){0,8}\n){0,8}",
        "([0-9]{1,3}:[a-z,=]{0,20}:(/[a-z0-9 .-]{0,10}){0,4}( \\(deleted\\))?\n){0,6}",
    ]
}

fn bytes_as_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u8>(), 0..300)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

proptest! {
    #[test]
    fn proc_cgroup_parser(text in prop_oneof![texty(), bytes_as_text()]) {
        if let Err(e) = parse_proc_cgroup(&text) {
            prop_assert!(e.to_string().contains("/proc/self/cgroup"), "{}", e);
        }
        let file = Path::new("/proc/4242/cgroup");
        match parse_proc_cgroup_of(&text, file) {
            Ok(lines) => {
                for m in lines {
                    prop_assert!(m.path.is_absolute());
                }
            }
            Err(e) => prop_assert!(e.to_string().contains("/proc/4242/cgroup"), "{}", e),
        }
    }

    #[test]
    fn mountinfo_parser(text in prop_oneof![
        texty(),
        bytes_as_text(),
        "([0-9]{1,3} [0-9]{1,3} [0-9]:[0-9]{1,2} /[a-z\\\\0-7]{0,8} /[a-z/\\\\0-7]{0,12} r[wo][a-z,]{0,8}( shared:[0-9])? - (cgroup2?|tmpfs|ext4) [a-z]{0,6} [a-z,=]{0,30}\n){0,6}",
    ]) {
        if let Err(e) = parse_mountinfo(&text) {
            prop_assert!(e.to_string().contains("/proc/self/mountinfo"), "{}", e);
        }
    }

    #[test]
    fn stats_parsers(text in prop_oneof![texty(), bytes_as_text()]) {
        let errors = [
            parse_flat_keyed(&text, "memory.stat").err(),
            parse_oom_control(&text).err(),
            parse_memory_events(&text).err(),
            parse_cpu_stat_v1(&text).err(),
            parse_cpu_stat_v2(&text).err(),
            parse_pids_events(&text).err(),
            parse_u64(&text, "pids.current").err(),
            parse_max(&text, "pids.max").err(),
        ];
        let files = [
            "memory.stat", "memory.oom_control", "memory.events", "cpu.stat", "cpu.stat",
            "pids.events", "pids.current", "pids.max",
        ];
        for (e, file) in errors.into_iter().zip(files) {
            if let Some(e) = e {
                prop_assert!(e.to_string().contains(file), "{}: {}", file, e);
            }
        }
    }

    #[test]
    fn flat_keyed_round_trips(entries in proptest::collection::btree_map("[a-z_]{1,12}", any::<u64>(), 0..8)) {
        let text: String = entries.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
        let parsed = parse_flat_keyed(&text, "cpu.stat").unwrap();
        prop_assert_eq!(parsed, entries);
    }
}
