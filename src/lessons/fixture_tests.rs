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

/// `L`'s recorded run on `machine`, judged.
pub(super) fn judged<L: super::engine::Def>(machine: &str) -> super::engine::Judged {
    let (_, rec) = recordings(L::ID)
        .into_iter()
        .find(|(m, _)| m == machine)
        .unwrap_or_else(|| panic!("{}: no recording on {machine}", L::ID));
    let obs: L::Obs = serde_json::from_value(rec.observations).unwrap();
    let options: L::Options = serde_json::from_value(rec.options).unwrap();
    L::judge(&obs, &options, &rec.env)
}

/// A cgroup lesson removes its cgroup once its last step is shown: no step says so (with
/// --step each was shown while the cgroup was there); a note after them does.
pub(super) fn removal_said_after_the_steps(j: &super::engine::Judged) {
    for step in &j.steps {
        assert!(
            !step.actions.iter().any(|a| a.starts_with("rmdir ")),
            "{}: {:?}",
            step.id,
            step.actions
        );
    }
    assert!(
        j.notes
            .iter()
            .any(|n| n.contains("removed what it made: rmdir /sys/fs/cgroup/")),
        "{:?}",
        j.notes
    );
}

/// A projector at 80×24: in `--compact`, each step of the pid lesson (its header, tables,
/// notes and takeaway) fits one screen, on every machine it was recorded on.
#[test]
fn each_pid_step_fits_one_80_by_24_screen_in_compact() {
    colored::control::set_override(false);
    let lesson = super::find("pid").unwrap();
    let mut steps = 0;
    for (machine, rec) in recordings(lesson.id) {
        let file = Path::new("tests/fixtures/recordings")
            .join(&machine)
            .join("pid.json");
        let report = super::engine::mark_replay((lesson.imp.judge)(&rec).unwrap(), &file, &rec);
        let fmt = crate::render::text::Fmt::new(80, true);
        for (i, step) in report.steps.iter().enumerate() {
            let text = crate::render::human::step(step, i + 1, &fmt);
            let rows = text.trim_matches('\n').lines().count();
            assert!(
                rows <= 24,
                "pid on {machine}, step {}: {rows} rows at 80 columns:\n{text}",
                i + 1
            );
            steps += 1;
        }
    }
    assert!(steps >= 4);
}

/// The tour's own lines, around the lessons' (tested above): the recap of every recorded
/// run, a lesson skipped and one failed with the longest reasons nsx gives, and the
/// summary, none wider than the terminal at 60, 80, 100 and 120 columns.
#[test]
fn the_tour_fits_every_width() {
    use crate::render::human::{
        recap, tour_failed, tour_skipped, tour_summary, TourResult, TourRow,
    };
    colored::control::set_override(false);
    let failure = crate::error::sys(
        crate::error::op::MKDIR,
        "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/nsx-4242-98765-memory",
        nix::errno::Errno::EACCES,
    );
    let reason = "the memory controller is not enabled in /sys/fs/cgroup/user.slice/user-1000.slice/cgroup.subtree_control, and this user cannot enable it there";
    let fix = "sudo systemctl edit user@.service, add [Service] Delegate=memory cpu pids, then log in again";
    for width in [60, 80, 100, 120] {
        let fmt = crate::render::text::Fmt::new(width, false);
        let mut text = String::new();
        let mut rows = Vec::new();
        for lesson in LESSONS {
            let result = match recordings(lesson.id).into_iter().next() {
                Some((_, rec)) => {
                    let report = (lesson.imp.judge)(&rec).unwrap();
                    text += &recap(&report, &fmt);
                    TourResult::Ran(Box::new(report))
                }
                None => {
                    text += &tour_skipped(lesson, reason, fix, &fmt);
                    TourResult::Skipped(reason.into())
                }
            };
            rows.push(TourRow {
                lesson,
                result,
                millis: 1234.5,
            });
        }
        let lesson = &LESSONS[0];
        text += &tour_skipped(lesson, reason, fix, &fmt);
        text += &tour_failed(lesson, &failure, &fmt);
        rows.push(TourRow {
            lesson,
            result: TourResult::Skipped(reason.into()),
            millis: 0.0,
        });
        rows.push(TourRow {
            lesson,
            result: TourResult::Failed(failure.to_string()),
            millis: 12.0,
        });
        text += &tour_summary(&rows, &fmt);
        for line in text.lines() {
            assert!(
                line.chars().count() <= width,
                "the tour at {width} columns: {line:?}"
            );
        }
    }
}
