//! Presenter mode: `nsx lesson ID --step` on a terminal. At every pause of the lessons
//! that keep their mechanism alive (memory, cpu, pids, net, rootfs), the commands nsx
//! prints for a second terminal work then and there, and the text says nothing is gone
//! that is not; the keys go on, show a step again, go back a step, or quit, and nothing
//! is left on the host afterwards.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::common::*;

/// How long one step may take to measure and print (a debug build, a busy machine).
const STEP: Duration = Duration::from_secs(60);

/// Runs `sh -c cmd` as this (root) test: the command must succeed and print something.
fn run_look(id: &str, step: usize, cmd: &str) {
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{id} at step {step}: `{cmd}` failed ({:?}): {}",
        out.status,
        stderr(&out)
    );
    assert!(
        !out.stdout.iter().all(u8::is_ascii_whitespace),
        "{id} at step {step}: `{cmd}` printed nothing"
    );
}

/// Runs `nsx lesson ID --step` through its `steps` steps: each pause shows the next step
/// and at least one command for a second terminal, each of which works while nsx waits;
/// Enter goes on. Then nsx exits 0 and nothing of the run is left.
fn every_pause_offers_commands_that_work(id: &str, steps: usize) {
    let (_dir, exe) = copy_binary(&format!("nsx-present-{id}"));
    let mut run = Presented::start(&exe, &[id]);
    let pid = run.child.id();
    for step in 1..=steps {
        let pause = run
            .next_pause(STEP)
            .unwrap_or_else(|| panic!("{id}: nsx ended before the pause of step {step}"));
        assert!(
            pause.contains(&format!("\nstep {step} · ")),
            "{id}: the pause after step {step} shows another step: {pause}"
        );
        assert!(
            !pause.contains(&format!("\nstep {} · ", step + 1)),
            "{id}: step {} shown before the pause of step {step}: {pause}",
            step + 1
        );
        // Nothing is removed while nsx waits: no step may say it was (issue 14: the net
        // step said the pair was deleted while it was still up).
        for claim in ["$ rmdir", "nsx deleted", "nsx removed"] {
            assert!(
                !pause.contains(claim),
                "{id}: the pause of step {step} says `{claim}`: {pause}"
            );
        }
        let look = look_commands(&pause);
        assert!(
            !look.is_empty(),
            "{id}: no command to look at step {step} from a second terminal: {pause}"
        );
        for cmd in &look {
            run_look(id, step, cmd);
        }
        run.press(b'\n');
    }
    let (status, rest) = run.finish(STEP);
    assert_eq!(status.code(), Some(0), "{id}: {rest}");
    assert!(
        !rest.contains(PAUSE_PROMPT),
        "{id}: a pause after its {steps} steps: {rest}"
    );
    assert!(rest.contains("facts hold"), "{id}: {rest}");
    nothing_left(id, &exe, pid);
}

fn nothing_left(id: &str, exe: &Path, pid: u32) {
    let running = wait_for_no_process_of(exe, Duration::from_secs(5));
    assert!(running.is_empty(), "{id}: processes left: {running:?}");
    let left = leftovers_of(&BTreeSet::from([pid]));
    assert!(left.is_empty(), "{id}: left {left:?}");
}

#[test]
fn memory_pauses_with_commands_that_work() {
    if !privileged("presenter mode: memory") {
        return;
    }
    every_pause_offers_commands_that_work("memory", 2);
}

#[test]
fn cpu_pauses_with_commands_that_work() {
    if !privileged("presenter mode: cpu") {
        return;
    }
    let _cpu = cpu_heavy();
    every_pause_offers_commands_that_work("cpu", 2);
}

#[test]
fn pids_pauses_with_commands_that_work() {
    if !privileged("presenter mode: pids") {
        return;
    }
    every_pause_offers_commands_that_work("pids", 2);
}

#[test]
fn net_pauses_with_commands_that_work() {
    if !privileged("presenter mode: net") {
        return;
    }
    every_pause_offers_commands_that_work("net", 3);
}

#[test]
fn rootfs_pauses_with_commands_that_work() {
    if !privileged("presenter mode: rootfs") {
        return;
    }
    every_pause_offers_commands_that_work("rootfs", 5);
}

/// The keys at a pause, on the mount lesson (three steps, shown while its directory
/// exists): r shows the current step again, Enter goes on, b shows the step before, q
/// ends the lesson with exit 0 and removes what it made.
#[test]
fn keys_repeat_go_back_and_quit_cleanly() {
    if !privileged("presenter keys") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-present-keys");
    let mut run = Presented::start(&exe, &["mount"]);
    let pid = run.child.id();
    let shows = |pause: &str, n: usize| pause.contains(&format!("\nstep {n} · "));

    let first = run.next_pause(STEP).expect("a first pause");
    assert!(shows(&first, 1) && !shows(&first, 2), "{first}");
    assert_eq!(
        temp_dirs_of(&BTreeSet::from([pid])).len(),
        1,
        "the mount lesson holds its directory while it waits"
    );
    run.press(b'r');
    let again = run.next_pause(STEP).expect("a pause after r");
    assert!(shows(&again, 1) && !shows(&again, 2), "r: {again}");
    run.press(b'\n');
    let second = run.next_pause(STEP).expect("a pause after Enter");
    assert!(shows(&second, 2) && !shows(&second, 1), "Enter: {second}");
    run.press(b'b');
    let back = run.next_pause(STEP).expect("a pause after b");
    assert!(shows(&back, 1) && !shows(&back, 2), "b: {back}");
    run.press(b'q');
    let (status, rest) = run.finish(STEP);
    assert_eq!(status.code(), Some(0), "q: {rest}");
    assert!(!rest.contains("facts (computed"), "q went on: {rest}");
    nothing_left("mount", &exe, pid);
}

/// q at the net lesson's veth pause, with the pair up: nsx exits 0 and the pair is gone.
#[test]
fn quitting_at_the_veth_pause_removes_the_pair() {
    if !privileged("presenter q at the veth step") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-present-quit");
    let mut run = Presented::start(&exe, &["net"]);
    let pid = run.child.id();
    for _ in 0..2 {
        run.next_pause(STEP).expect("the namespace steps' pauses");
        run.press(b'\n');
    }
    let veth = run.next_pause(STEP).expect("the veth step's pause");
    assert!(veth.contains("\nstep 3 · veth"), "{veth}");
    assert_eq!(
        veths_of(&BTreeSet::from([pid])),
        [format!("nsx{pid}h")],
        "the pair is up while nsx waits"
    );
    run.press(b'q');
    let (status, rest) = run.finish(STEP);
    assert_eq!(status.code(), Some(0), "{rest}");
    nothing_left("net", &exe, pid);
}
