//! Every fact of every lesson, judged without root from recorded runs: it holds on each
//! machine's recording, and each of its falsifiers (a minimal change to the observations)
//! makes it fail. A fact without a falsifier fails the test: a fact that cannot fail
//! teaches nothing.
//!
//! Recordings live in tests/fixtures/recordings/<machine>/<lesson>.json, one directory
//! per machine: `hybrid-root` and `hybrid-rootless` (the development machines, cgroup v1
//! hybrid) and `v2-root` (Debian's kernel in the kernel matrix). scripts/record-fixtures.sh
//! makes them.

use std::path::{Path, PathBuf};

use super::engine::{read_recording, Recording};
use super::LESSONS;

/// The machines every lesson is recorded on, and the lessons a machine cannot run (a
/// rootless user on cgroup v1 owns no cgroup to limit).
const MACHINES: &[(&str, &[&str])] = &[
    ("hybrid-root", &[]),
    ("hybrid-rootless", &["memory", "cpu", "pids"]),
    ("v2-root", &[]),
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recordings")
}

/// The recordings of `id`, one per machine that can run it.
fn recordings(id: &str) -> Vec<(String, Recording)> {
    let mut out = Vec::new();
    for (machine, cannot) in MACHINES {
        let path = dir().join(machine).join(format!("{id}.json"));
        if cannot.contains(&id) {
            assert!(!path.exists(), "{} should not exist", path.display());
            continue;
        }
        let rec = read_recording(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}\n(record it: scripts/record-fixtures.sh {id})",
                path.display()
            )
        });
        out.push((machine.to_string(), rec));
    }
    out
}

#[test]
fn every_fact_holds_on_every_recording_and_each_can_fail() {
    let mut checked = 0;
    for lesson in LESSONS {
        let e = &lesson.imp;
        let recs = recordings(lesson.id);
        assert!(!recs.is_empty(), "{}: no recording", lesson.id);
        for (machine, rec) in &recs {
            let report = (e.judge)(rec).unwrap();
            let ids: Vec<&str> = report
                .facts
                .iter()
                .chain(&report.inconclusive)
                .map(|f| f.id.as_str())
                .collect();
            let mut want = lesson.facts.to_vec();
            let mut got = ids.clone();
            want.sort_unstable();
            got.sort_unstable();
            assert_eq!(
                got, want,
                "{} on {machine}: the facts judged are not the facts declared",
                lesson.id
            );
            for f in &report.facts {
                assert!(
                    f.holds,
                    "{} on {machine}: {} does not hold: {}",
                    lesson.id, f.id, f.claim
                );
            }
            let falsified = (e.falsify)(rec).unwrap();
            for (fact, what, holds) in &falsified {
                assert!(
                    !holds,
                    "{} on {machine}: {fact} still holds when {what}",
                    lesson.id
                );
            }
            for fact in lesson.facts {
                assert!(
                    falsified.iter().any(|(f, _, _)| f == fact),
                    "{}: fact {fact} has no falsifier, so no test shows it can fail",
                    lesson.id
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 0);
}

#[test]
fn a_replayed_recording_names_where_it_came_from() {
    let lesson = &LESSONS[0];
    let path = dir()
        .join("hybrid-root")
        .join(format!("{}.json", lesson.id));
    let report = super::replay(lesson, &path, &mut super::Silent).unwrap();
    let replay = report.replay.expect("marked as a replay");
    assert!(replay.file.ends_with(&format!("{}.json", lesson.id)));
    assert_eq!(report.machine.unwrap().cgroup, "hybrid");
}

/// Every recording, replayed and rendered as a student reads it (no colour): the real
/// values of a real run, identical on every machine that renders them.
#[test]
fn replays_render_the_recorded_runs() {
    colored::control::set_override(false);
    for lesson in LESSONS {
        let e = &lesson.imp;
        for (machine, rec) in recordings(lesson.id) {
            let file = Path::new("tests/fixtures/recordings")
                .join(&machine)
                .join(format!("{}.json", lesson.id));
            let report = super::engine::mark_replay((e.judge)(&rec).unwrap(), &file, &rec);
            for width in [60, 80, 100, 120] {
                let fmt = crate::render::text::Fmt::new(width, false);
                let text = crate::render::human::replayed(lesson, &file, &rec, &report, &fmt);
                for line in text.lines() {
                    assert!(
                        line.chars().count() <= width,
                        "{} on {machine} at {width} columns: {line:?}",
                        lesson.id
                    );
                }
                if width == 100 {
                    insta::assert_snapshot!(format!("replay_{machine}_{}", lesson.id), text);
                }
            }
        }
    }
}

/// A run's observations as they stand at a pause, and how many steps were made by then.
pub(super) type Paused<O> = (O, usize);

/// For a lesson that pauses while its mechanism is alive (`Measure::pause`): each run
/// `cut` makes of a recording (its observations as they stand at a pause, with the number
/// of steps made by then) is judged into exactly those steps, and each is the step the
/// whole run's judge shows. With --step nsx shows a step from the run cut short and never
/// again, so a step that changed once the run went on (a removal it came to claim, a
/// count it came to hold) would be a step the presenter never saw.
pub(super) fn paused_runs_show_the_whole_runs_steps<L: super::engine::Def>(
    cut: fn(&L::Obs) -> Vec<Paused<L::Obs>>,
) {
    let mut checked = 0;
    for (machine, rec) in recordings(L::ID) {
        let obs: L::Obs = serde_json::from_value(rec.observations.clone()).unwrap();
        let options: L::Options = serde_json::from_value(rec.options.clone()).unwrap();
        let whole = serde_json::to_value(L::judge(&obs, &options, &rec.env).steps).unwrap();
        let mut last = 0;
        for (partial, made) in cut(&obs) {
            // What Measure::pause hands the presenter: the observations as JSON, read
            // back as the lesson's own.
            let value = serde_json::to_value(&partial).unwrap();
            let partial: L::Obs = serde_json::from_value(value).unwrap();
            let steps = serde_json::to_value(L::judge(&partial, &options, &rec.env).steps).unwrap();
            assert_eq!(
                steps.as_array().unwrap().len(),
                made,
                "{} on {machine}: a run paused after {made} step(s)",
                L::ID
            );
            assert_eq!(
                steps.as_array().unwrap()[..],
                whole.as_array().unwrap()[..made],
                "{} on {machine}: at the pause after {made} step(s), the steps differ from the whole run's",
                L::ID
            );
            assert!(made > last, "{}: the pauses go forward", L::ID);
            last = made;
            checked += 1;
        }
        assert_eq!(
            last,
            whole.as_array().unwrap().len(),
            "{} on {machine}: the last pause shows the last step",
            L::ID
        );
    }
    assert!(checked > 0, "{}: no recording", L::ID);
}
