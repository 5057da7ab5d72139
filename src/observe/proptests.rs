//! Random bytes into the /proc readers of observe: a result or an error naming the
//! file, never a panic.

use proptest::prelude::*;

use super::*;

fn status_like() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        "(Name|State|Pid|PPid|Uid|Gid|NSpid|CapEff|CapPrm|CapBnd|Seccomp|NoNewPrivs|Threads|SigQ):\t[0-9a-zA-Z/ \t()-]{0,30}",
        ".{0,40}",
    ];
    proptest::collection::vec(line, 0..20).prop_map(|l| l.join("\n"))
}

/// A process directory holding `status`, an empty `ns/` and `uid_map`.
fn proc_dir(status: &str, uid_map: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("status"), status).unwrap();
    std::fs::create_dir(d.path().join("ns")).unwrap();
    std::fs::write(d.path().join("uid_map"), uid_map).unwrap();
    std::fs::write(d.path().join("cgroup"), "0::/\n").unwrap();
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn read_proc_survives_any_status(status in status_like(), uid_map in ".{0,60}") {
        let d = proc_dir(&status, &uid_map);
        if let Err(e) = read_proc(d.path()) {
            prop_assert!(e.to_string().contains("status"), "{}", e);
        }
    }

    #[test]
    fn read_proc_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let d = proc_dir("", "");
        std::fs::write(d.path().join("status"), &bytes).unwrap();
        if let Err(e) = read_proc(d.path()) {
            prop_assert!(e.to_string().contains("status"), "{}", e);
        }
    }

    #[test]
    fn mountinfo_summary_survives_any_text(text in prop_oneof![
        ".{0,300}",
        "([0-9]{1,3} [0-9]{1,3} [0-9]:[0-9] / /[a-z/]{0,10} rw( shared:[0-9]| master:[0-9])? - [a-z]{1,6} [a-z]{0,6} rw\n){0,6}",
    ]) {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("mountinfo");
        std::fs::write(&path, &text).unwrap();
        if let Err(e) = parse_mounts(&std::fs::read(&path).unwrap(), &path, Parts::ALL) {
            prop_assert!(e.to_string().contains("mountinfo"), "{}", e);
        }
    }

    #[test]
    fn ns_links_parse_only_in_their_form(text in ".{0,30}", ty in "[a-z]{1,6}", inode in any::<u64>()) {
        let _ = parse_ns_link(&text);
        prop_assert_eq!(parse_ns_link(&format!("{ty}:[{inode}]")), Some(inode));
    }

    #[test]
    fn stat_lines_parse_or_are_refused_never_panic(text in prop_oneof![
        ".{0,120}",
        "[0-9]{1,5} \\([a-z() ]{0,12}\\) [RSDZTX]( -?[0-9]{1,8}){0,25}",
    ]) {
        // A line or nothing, never a panic (the name may hold any bytes).
        let _ = process::parse_stat(&text);
    }
}
