use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use nsx::cli::{Cli, Color, Command, Format, LessonArgs, RootfsCommand, TourArgs};
use nsx::error::{Error, Result};
use nsx::lessons;
use nsx::render;
use nsx::sandbox::signals;
use nsx::{doctor, inspect, manual};

/// Whether standard output was a terminal when nsx started: after a hang-up it no
/// longer answers as one (tty_ioctl(4) fails), but its EIO still means the hang-up.
static STDOUT_WAS_TERMINAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

fn main() -> ExitCode {
    STDOUT_WAS_TERMINAL.get_or_init(|| std::io::stdout().is_terminal());
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if let Some(why) = unknown_lesson(&e).or_else(|| misplaced_lesson_flag(&e)) {
                nsx::warn!("nsx: {why}");
                usage_json(&e, &why);
                return ExitCode::from(2);
            }
            return clap_exit(&e);
        }
    };
    set_colour(cli.color);
    signals::install();
    match run(&cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(Error::BrokenPipe) => ExitCode::from(Error::BrokenPipe.exit_code() as u8),
        // A presenter pressed q at a pause: everything was cleaned up on the way out.
        Err(Error::Quit) => ExitCode::SUCCESS,
        Err(e) => {
            nsx::warn!("nsx: {e}");
            if cli.format == Format::Json {
                // A script reading stdout learns why too (docs/json.md): a write that
                // fails here changes nothing, the exit code below says it all.
                let _ = out(&json(&e.json_outcome()));
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Whether `--format json` (or `--format=json`) is on the command line, before any
/// `--` (after it the words are `nsx run`'s command): clap's own usage errors come before
/// there is a parsed [`Cli`] to ask.
fn json_requested() -> bool {
    json_in(std::env::args().skip(1))
}

fn json_in(args: impl Iterator<Item = String>) -> bool {
    let mut format_next = false;
    let mut json = false;
    for a in args {
        if a == "--" {
            break;
        }
        if format_next {
            json = a == "json";
            format_next = false;
        } else if a == "--format" {
            format_next = true;
        } else if let Some(v) = a.strip_prefix("--format=") {
            json = v == "json";
        }
    }
    json
}

/// A usage error (exit 2) as the JSON object a script reads with `--format json`: the
/// reason, and as the fix the command whose `--help` names the valid arguments.
fn usage_json(e: &clap::Error, reason: &str) {
    if !json_requested() {
        return;
    }
    let rendered = e.render().to_string();
    // clap's text ends with "Usage: nsx tour [OPTIONS]": the command is what precedes
    // the first placeholder.
    let command = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(|u| {
            u.split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "nsx".to_string());
    let err = Error::Usage(reason.to_string());
    let mut v = err.json_outcome();
    v["error"]["fix"] = format!("{command} --help lists the valid arguments").into();
    let _ = out(&json(&v));
}

/// clap's message without its "error: " prefix and usage lines: what was wrong.
fn clap_reason(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let body = text.split("\n\nUsage:").next().unwrap_or(&text);
    let body = body
        .split("\n\nFor more information")
        .next()
        .unwrap_or(body);
    body.trim()
        .strip_prefix("error: ")
        .unwrap_or(body.trim())
        .to_string()
}

/// `nsx lesson pdi`: a lesson that does not exist. Names the lessons it may mean (by
/// meaning, then spelling) and all of them.
fn unknown_lesson(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(word)) = e.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "lesson")?;
    if args.get(at + 1) != Some(word) {
        return None;
    }
    let mut why = format!("unknown lesson {word:?}");
    let maybe = lessons::suggest(word);
    if !maybe.is_empty() {
        why += &format!("; did you mean {}?", maybe.join(", "));
    }
    why += &format!("\n  the lessons: {}", lessons::ids().join(", "));
    Some(why)
}

/// `nsx lesson pid --memory 32M`: a flag clap does not know for this lesson, that
/// another lesson takes. Says which one, rather than only "unexpected argument".
fn misplaced_lesson_flag(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split('=').next()?.strip_prefix("--")?;
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "lesson")?;
    let id = args.get(at + 1)?;
    lessons::find(id)?;
    let takes = |l: &lessons::Lesson| {
        l.command().get_arguments().any(|a| {
            a.get_long() == Some(flag) || a.get_all_aliases().is_some_and(|al| al.contains(&flag))
        })
    };
    let owner = lessons::LESSONS
        .iter()
        .find(|l| l.id != id && takes(l))
        .map(|l| l.id)?;
    Some(format!(
        "--{flag} belongs to the {owner} lesson (nsx lesson {owner} --{flag} ...), not to {id}; nsx lesson {id} --help lists its options"
    ))
}

/// clap's own output (--help, --version, a usage error), written without ever
/// panicking. Help that cannot be written is an error (exit 1, or 141 quietly for a
/// closed pipe, as for any output of nsx); a usage error keeps exit 2 even when standard
/// error cannot take its message.
fn clap_exit(e: &clap::Error) -> ExitCode {
    if let Some(text) = another_lessons_flag(e) {
        nsx::warn!("nsx: {text}");
        usage_json(e, &text);
        return ExitCode::from(nsx::error::exit::USAGE as u8);
    }
    let code = e.exit_code();
    if code == nsx::error::exit::USAGE {
        usage_json(e, &clap_reason(e));
    }
    let written = e.print().and_then(|()| {
        if code == 0 {
            std::io::stdout().flush()
        } else {
            std::io::stderr().flush()
        }
    });
    match written {
        Err(err) if code == 0 => {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                ExitCode::from(Error::BrokenPipe.exit_code() as u8)
            } else {
                nsx::warn!("nsx: write to standard output: {err}");
                ExitCode::from(nsx::error::exit::FAILURE as u8)
            }
        }
        _ => ExitCode::from(code as u8),
    }
}

fn set_colour(choice: Color) {
    let on = match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    };
    colored::control::set_override(on);
}

fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => Error::BrokenPipe,
            // write(2) on a terminal that hung up fails with EIO (pty(7)): the user is
            // gone, as with SIGHUP, which may arrive too.
            _ if e.raw_os_error() == Some(libc::EIO)
                && STDOUT_WAS_TERMINAL.get().copied().unwrap_or(false) =>
            {
                Error::Interrupted(libc::SIGHUP)
            }
            _ => Error::Other(format!("{STDOUT_WRITE}: {e}")),
        })
}

fn run(cli: &Cli) -> Result<i32> {
    match &cli.command {
        Command::Lessons => list_lessons(cli.format, &cli.fmt()),
        Command::Lesson(args) => lesson(cli.format, &cli.fmt(), args),
        Command::Tour(args) => tour(cli.format, &cli.fmt(), args),
        Command::Doctor => {
            let report = doctor::report(doctor::host().clone());
            match cli.format {
                Format::Human => out(&doctor::render::human(&report))?,
                Format::Json => out(&json(&report))?,
            }
            Ok(0)
        }
        Command::Inspect(args) => {
            // The layout turns the process's cgroup paths into directories to read limits
            // from; without a cgroup file system there are just no limits to show.
            let layout = nsx::cgroup::Layout::detect_all().ok();
            let i = inspect::inspect(std::path::Path::new("/proc"), args.pid, layout.as_ref())?;
            match cli.format {
                Format::Human => out(&inspect::render::inspection(&i))?,
                Format::Json => out(&json(&i))?,
            }
            Ok(0)
        }
        Command::Why(args) => {
            let w = nsx::why::why(
                std::path::Path::new("/proc"),
                args.pid,
                &args.operation,
                args.path.as_deref(),
            )?;
            match cli.format {
                Format::Human => out(&nsx::why::render::why(&w))?,
                Format::Json => out(&json(&w))?,
            }
            Ok(0)
        }
        Command::Ps => {
            let ps = inspect::ps(std::path::Path::new("/proc"))?;
            match cli.format {
                Format::Human => out(&inspect::render::ps(&ps))?,
                Format::Json => out(&json(&ps))?,
            }
            Ok(0)
        }
        Command::Glossary => {
            match cli.format {
                Format::Human => out(&render::markdown::render(nsx::GLOSSARY, &cli.fmt()))?,
                Format::Json => out(&json(&serde_json::json!({ "glossary": nsx::GLOSSARY })))?,
            }
            Ok(0)
        }
        Command::Completions(args) => {
            out(&String::from_utf8_lossy(&manual::completions(args.shell)))?;
            Ok(0)
        }
        Command::Man(args) => {
            match &args.out_dir {
                None => out(&String::from_utf8_lossy(&manual::man_page()?))?,
                Some(dir) => {
                    for name in manual::write_man_pages(dir)? {
                        out(&format!("{}\n", dir.join(name).display()))?;
                    }
                }
            }
            Ok(0)
        }
        Command::Run(args) => nsx::run::run(&args.options()),
        Command::Rootfs(cmd) => rootfs(cli.format, cmd),
    }
}

/// `nsx lesson ID --flag` where the flag is another lesson's own option (`nsx lesson pid
/// --memory 32M`): the usage error says whose it is, not only that it is unexpected.
fn another_lessons_flag(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split('=').next()?;
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "lesson")?;
    let id = args[at + 1..].iter().find_map(|a| lessons::find(a))?.id;
    let owner = lessons::flag_owner(flag)?.id;
    (owner != id).then(|| {
        format!("{flag} belongs to the {owner} lesson (nsx lesson {owner} {flag} ...), not to {id}")
    })
}

/// `nsx lessons` (and a bare `nsx lesson`): every lesson and whether it runs here.
fn list_lessons(format: Format, fmt: &render::human::Fmt) -> Result<i32> {
    // What each lesson needs here is the doctor's verdict for this machine, the same that
    // `nsx doctor` prints.
    let machine = nsx::doctor::host();
    let rows: Vec<_> = lessons::LESSONS
        .iter()
        .map(|l| {
            (
                l,
                l.support(),
                nsx::doctor::verdict(machine, l).verdict.needs(l),
            )
        })
        .collect();
    match format {
        Format::Human => out(&render::human::lessons(&rows, fmt))?,
        Format::Json => {
            let list: Vec<_> = rows
                .iter()
                .map(|(l, support, needs)| {
                    serde_json::json!({
                    "id": l.id,
                    "title": l.title,
                    "mechanism": l.mechanism,
                    "needs": needs,
                    "supported": support,
                    "facts": l.facts,
                    })
                })
                .collect();
            out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&list).expect("serialisable")
            ))?;
        }
    }
    Ok(0)
}

/// What `nsx rootfs import` did, with what it left out by default and why.
fn import_summary(
    tar: &std::path::Path,
    dir: &std::path::Path,
    got: &nsx::rootfs::import::Imported,
    opts: nsx::rootfs::import::Options,
) -> String {
    use nsx::fsat::printable_path;
    let dir = printable_path(dir);
    let mut text = format!(
        "unpacked {} into {dir}: {} directories, {} files, {} symlinks, {} hard links, {} device nodes and FIFOs\n  every path was resolved inside {dir} (openat2 RESOLVE_IN_ROOT): no link in the archive can make nsx write outside it\n",
        printable_path(tar),
        got.dirs,
        got.files,
        got.symlinks,
        got.hardlinks,
        got.devices,
    );
    if got.devices_skipped > 0 {
        text.push_str(&format!(
            "  skipped {} device node{}: one gives whoever can open it the device itself (--keep-devices creates them)\n",
            got.devices_skipped,
            if got.devices_skipped == 1 { "" } else { "s" }
        ));
    }
    if got.setid_stripped > 0 {
        text.push_str(&format!(
            "  cleared setuid/setgid on {} file{}: such a program runs with its owner's rights for anyone (--keep-setid keeps them)\n",
            got.setid_stripped,
            if got.setid_stripped == 1 { "" } else { "s" }
        ));
    }
    let kept: Vec<&str> = [
        (opts.keep_devices, "device nodes"),
        (opts.keep_setid, "setuid/setgid bits"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, what)| *what)
    .collect();
    if !kept.is_empty() {
        text.push_str(&format!(
            "  kept as in the archive, as asked: {}\n",
            kept.join(" and ")
        ));
    }
    for s in &got.skipped {
        text.push_str(&format!("  skipped {s}\n"));
    }
    text
}

fn json<T: serde::Serialize>(value: &T) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).expect("serialisable")
    )
}

fn rootfs(format: Format, cmd: &RootfsCommand) -> Result<i32> {
    let (value, text) = match cmd {
        RootfsCommand::Busybox { dir } => {
            let built = nsx::rootfs::busybox::build(dir)?;
            let dir = nsx::fsat::printable_path(dir);
            let text = format!(
                "built a busybox rootfs in {dir}\n  {} from {}, copied to /bin/busybox\n  {} applets as relative links (bin/sh -> busybox, usr/bin/awk -> ../../bin/busybox)\n  /etc/passwd and /etc/group with root and nobody\n  directories: {}\ntry it: sudo nsx run --all --rootfs {dir} -it -- /bin/sh\n",
                built.version,
                built.busybox.display(),
                built.applets,
                built.dirs.join(" "),
            );
            (serde_json::to_value(&built).expect("serialisable"), text)
        }
        RootfsCommand::Import {
            tar,
            dir,
            keep_devices,
            keep_setid,
        } => {
            let opts = nsx::rootfs::import::Options {
                keep_devices: *keep_devices,
                keep_setid: *keep_setid,
            };
            let got = nsx::rootfs::import::import(tar, dir, opts)?;
            (
                serde_json::to_value(&got).expect("serialisable"),
                import_summary(tar, dir, &got, opts),
            )
        }
    };
    match format {
        Format::Human => out(&text)?,
        Format::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&value).expect("serialisable")
        ))?,
    }
    Ok(0)
}

/// Whether --step can pause here; says why not when it cannot.
fn can_pause(step: bool, format: Format) -> bool {
    let human = format == Format::Human;
    let pause = step && human && std::io::stdin().is_terminal();
    if step && human && !pause {
        nsx::warn!(
            "nsx: --step: standard input is not a terminal, so nsx will not pause between steps"
        );
    }
    pause
}

fn pause_here(prompt: &str) -> Result<()> {
    // Probes released so far are done: reap them now so no zombie shows in a student's
    // `ps` during the pause.
    nsx::sandbox::reap_released();
    out(&format!("\n  [press Enter {prompt}] "))?;
    wait_for_enter()
}

/// Prints a lesson's steps as they are judged and, with --step, waits between them: a
/// presenter's keys move on, show the step again, show the one before, or quit.
struct Live<'a> {
    human: bool,
    fmt: &'a render::human::Fmt,
    pause: bool,
    /// Every step shown so far, for the keys that show one again.
    shown: Vec<nsx::report::Step>,
}

impl lessons::Presenter for Live<'_> {
    fn show(&mut self, step: &nsx::report::Step) -> Result<()> {
        self.shown.push(step.clone());
        if self.human {
            out(&render::human::step(step, self.shown.len(), self.fmt))?;
        }
        Ok(())
    }

    fn pause(&mut self, look: &[String]) -> Result<()> {
        if !self.pause || !self.human {
            return Ok(());
        }
        // Probes released so far are done: reap them now so no zombie shows in a
        // student's `ps` during the pause.
        nsx::sandbox::reap_released();
        if !look.is_empty() {
            out("\n  it is still there: look at it from a second terminal\n")?;
            for cmd in look {
                out(&format!("    $ {cmd}\n"))?;
            }
        }
        let mut at = self.shown.len();
        loop {
            out("\n  [Enter: go on · r: this step again · b: the step before · q: quit] ")?;
            match read_key()? {
                Key::Next => {
                    out("\n")?;
                    return Ok(());
                }
                Key::Quit => {
                    out("\n")?;
                    return Err(Error::Quit);
                }
                key => {
                    if key == Key::Back {
                        at = at.saturating_sub(1).max(1);
                    }
                    if let Some(step) = self.shown.get(at.wrapping_sub(1)) {
                        out("\n")?;
                        out(&render::human::step(step, at, self.fmt))?;
                    }
                }
            }
        }
    }

    fn pauses(&self) -> bool {
        self.pause
    }
}

/// Where a lesson's observations come from: measured now, or a recording.
enum Source<'a> {
    Live { record: Option<&'a std::path::Path> },
    Replay(&'a std::path::Path),
}

/// Runs one lesson, printing its human output as it goes (header, each step, footer).
fn run_one(
    lesson: &'static lessons::Lesson,
    options: serde_json::Value,
    format: Format,
    fmt: &render::human::Fmt,
    pause: bool,
    source: Source,
) -> Result<nsx::report::Report> {
    let human = format == Format::Human;
    if human {
        let head = match source {
            Source::Live { .. } => {
                render::human::header(lesson, nsx::report::Privilege::current(), fmt)
            }
            Source::Replay(file) => {
                let rec = lessons::engine::read_recording(file)?;
                render::human::replay_header(lesson, file, &rec, fmt)
            }
        };
        out(&head)?;
    }
    let mut presenter = Live {
        human,
        fmt,
        pause,
        shown: Vec::new(),
    };
    let report = match source {
        Source::Live { record } => {
            let (report, recording) = lessons::run(lesson, &options, &mut presenter)?;
            if let Some(path) = record {
                lessons::engine::write_recording(path, &recording)?;
            }
            report
        }
        Source::Replay(file) => lessons::replay(lesson, file, &mut presenter)?,
    };
    if human {
        out(&render::human::footer(&report, fmt))?;
    }
    Ok(report)
}

fn lesson(format: Format, fmt: &render::human::Fmt, args: &LessonArgs) -> Result<i32> {
    let Some(id) = &args.id else {
        // A bare `nsx lesson` lists what there is to run.
        return list_lessons(format, fmt);
    };
    let lesson = lessons::find(id).ok_or_else(|| Error::Usage(format!("unknown lesson {id}")))?;
    let options = lesson.options(&args.matches)?;
    let pause = can_pause(args.step, format);
    if args.explain && format == Format::Human {
        // The story first, rendered for the terminal; with --step the class reads it
        // before anything runs.
        out(&render::markdown::render(lesson.narrative, fmt))?;
        out("\n")?;
        if pause {
            pause_here("to run the lesson")?;
            out("\n")?;
        }
    }
    let source = match &args.replay {
        Some(file) => Source::Replay(file),
        None => Source::Live {
            record: args.record.as_deref(),
        },
    };
    let report = run_one(lesson, options, format, fmt, pause, source)?;
    if format == Format::Json {
        let mut value = serde_json::to_value(&report).expect("serialisable");
        if args.explain {
            value["narrative"] = serde_json::Value::String(lesson.narrative.to_string());
        }
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&value).expect("serialisable")
        ))?;
    }
    Ok(if report.ok { 0 } else { 1 })
}

/// Every lesson in curriculum order, a recap after each, a summary at the end. A lesson
/// this machine cannot run is recorded as skipped, with the reason and the fix, whether
/// the check before it refused it or the lesson itself found out while running; a lesson
/// that fails with an error is recorded as failed and the tour goes on. Only an
/// interruption (a signal, q at a pause, a closed output) ends it early.
fn tour(format: Format, fmt: &render::human::Fmt, args: &TourArgs) -> Result<i32> {
    let pause = can_pause(args.step, format);
    let human = format == Format::Human;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    let start = args
        .from
        .as_deref()
        .and_then(|id| lessons::LESSONS.iter().position(|l| l.id == id))
        .unwrap_or(0);
    for lesson in lessons::LESSONS[start..]
        .iter()
        .filter(|l| !args.skip.iter().any(|s| s == l.id))
        .filter(|l| args.only.is_empty() || args.only.iter().any(|s| s == l.id))
    {
        let mut row = render::human::TourRow {
            lesson,
            report: None,
            millis: 0.0,
            skipped: None,
            failed: None,
        };
        // The same check the lesson makes first (lessons::run): asked here too, so that a
        // lesson refused up front prints no header.
        let refused = match lesson.support() {
            lessons::Support::No { reason, fix } => Some(("before", reason, fix)),
            lessons::Support::Yes => None,
        };
        let outcome = match refused {
            Some(r) => Err(r),
            None => {
                let started = std::time::Instant::now();
                let ran = run_one(
                    lesson,
                    lesson.default_options()?,
                    format,
                    fmt,
                    pause,
                    Source::Live { record: None },
                );
                row.millis = started.elapsed().as_secs_f64() * 1000.0;
                match tour_outcome(ran)? {
                    TourOutcome::Ran(report) => Ok(report),
                    TourOutcome::Refused { reason, fix } => Err(("during", reason, fix)),
                    TourOutcome::Failed(e) => {
                        // Recorded, said on standard error as for a lesson on its own,
                        // and the tour goes on: the lessons after it may well run.
                        nsx::warn!("nsx: lesson {}: {e}", lesson.id);
                        if human {
                            out(&render::human::tour_failed(lesson, &e.to_string(), fmt))?;
                        }
                        json.push(serde_json::json!({
                            "lesson": lesson.id,
                            "verdict": "failed",
                            "ok": false,
                            "error": e.json(),
                        }));
                        row.failed = Some(e.to_string());
                        rows.push(row);
                        continue;
                    }
                }
            }
        };
        match outcome {
            Ok(report) => {
                if human {
                    out(&render::human::recap(&report, fmt))?;
                    if pause {
                        pause_here("for the next lesson")?;
                    }
                }
                let mut value = serde_json::to_value(&report).expect("serialisable");
                value["verdict"] = if report.ok { "held" } else { "failed" }.into();
                json.push(value);
                row.report = Some(report);
            }
            Err((when, reason, fix)) => {
                if human {
                    out(&render::human::tour_skipped(lesson, &reason, &fix, fmt))?;
                }
                json.push(serde_json::json!({
                    "lesson": lesson.id,
                    "verdict": "skipped",
                    "skipped": true,
                    "refused": when,
                    "reason": reason,
                    "fix": fix,
                }));
                row.skipped = Some(reason);
            }
        }
        rows.push(row);
    }
    match format {
        Format::Human => out(&render::human::tour_summary(&rows, fmt))?,
        Format::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&json).expect("serialisable")
        ))?,
    }
    Ok(tour_exit(&rows))
}

/// What became of one lesson of the tour that was started.
#[derive(Debug)]
enum TourOutcome {
    Ran(nsx::report::Report),
    /// The lesson found out while running that this machine cannot run it.
    Refused {
        reason: String,
        fix: String,
    },
    /// It failed with an error: recorded, and the tour goes on.
    Failed(Error),
}

/// Sorts a lesson's result for the tour. Only what ends the tour itself comes back as
/// an error: a signal, q at a pause, standard output gone.
fn tour_outcome(ran: Result<nsx::report::Report>) -> Result<TourOutcome> {
    match ran {
        Ok(report) => Ok(TourOutcome::Ran(report)),
        Err(Error::Unsupported { reason, fix }) => Ok(TourOutcome::Refused { reason, fix }),
        Err(e @ (Error::Interrupted(_) | Error::Quit | Error::BrokenPipe)) => Err(e),
        Err(Error::Other(m)) if m.starts_with(STDOUT_WRITE) => Err(Error::Other(m)),
        Err(e) => Ok(TourOutcome::Failed(e)),
    }
}

/// How a failed write to standard output begins ([`out`]): the tour cannot go on.
const STDOUT_WRITE: &str = "write to standard output";

/// 0 when every lesson that ran held (skipped ones aside), 1 otherwise.
fn tour_exit(rows: &[render::human::TourRow]) -> i32 {
    let all_ok = rows
        .iter()
        .all(|r| r.failed.is_none() && r.report.as_ref().is_none_or(|rep| rep.ok));
    if all_ok {
        nsx::error::exit::OK
    } else {
        nsx::error::exit::FAILURE
    }
}

/// Waits for a line on standard input (or Ctrl-D). Polls the signal self-pipe beside
/// stdin, so a Ctrl-C during a --step pause ends the lesson even if it lands just before
/// the wait (std's read_line would retry on EINTR and keep waiting).
///
/// A terminal that hangs up (the SSH connection dropped, the terminal window closed)
/// ends the lesson as SIGHUP does, cleaned up and with exit 129, whether or not the
/// signal comes: poll(2) reports POLLHUP on it and read(2) returns EOF or EIO for ever
/// after (pty(7)), so waiting on would spin.
fn wait_for_enter() -> Result<()> {
    loop {
        match read_key()? {
            Key::Next => return Ok(()),
            Key::Quit => return Err(Error::Quit),
            Key::Repeat | Key::Back => {}
        }
    }
}

/// What a presenter pressed at a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// Enter, space (or Ctrl-D on a terminal that is still there).
    Next,
    /// r: show this step again.
    Repeat,
    /// b: show the step before.
    Back,
    /// q: end the lesson cleanly.
    Quit,
}

/// The terminal in non-canonical mode without echo while a pause waits for one key
/// (termios(3)), restored when dropped, whatever ends the wait.
struct OneKey {
    saved: Option<nix::sys::termios::Termios>,
}

impl OneKey {
    fn new() -> OneKey {
        use nix::sys::termios::{
            tcgetattr, tcsetattr, LocalFlags, SetArg, SpecialCharacterIndices,
        };
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return OneKey { saved: None };
        };
        let mut raw = saved.clone();
        raw.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO);
        raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        // ISIG stays on: Ctrl-C still interrupts the lesson (and cleans up).
        match tcsetattr(&stdin, SetArg::TCSANOW, &raw) {
            Ok(()) => OneKey { saved: Some(saved) },
            Err(_) => OneKey { saved: None },
        }
    }
}

impl Drop for OneKey {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

/// Waits for one key on standard input. Polls the signal self-pipe beside it, so a
/// Ctrl-C during a pause ends the lesson even if it lands just before the wait (std's
/// read_line would retry on EINTR and keep waiting).
///
/// A terminal that hangs up (the SSH connection dropped, the terminal window closed)
/// ends the lesson as SIGHUP would: exit 129, after cleaning up.
fn read_key() -> Result<Key> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let _one_key = OneKey::new();
    let stdin = std::io::stdin();
    let mut byte = [0u8; 1];
    loop {
        signals::check()?;
        let mut fds = vec![PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        if let Some(wake) = signals::wake_fd() {
            fds.push(PollFd::new(wake, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(nsx::error::sys("poll", "standard input", e)),
            Ok(_) => {}
        }
        if fds
            .get(1)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty())
        {
            continue; // a signal: check() above turns it into Interrupted
        }
        let hung_up = PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
        if fds[0].revents().is_some_and(|r| r.intersects(hung_up)) {
            return Err(Error::Interrupted(libc::SIGHUP));
        }
        match nix::unistd::read(&stdin, &mut byte) {
            // Ctrl-D on a terminal that is still there: go on, as Enter does.
            Ok(0) => return Ok(Key::Next),
            Ok(_) => match byte[0] {
                b'\n' | b'\r' | b' ' => return Ok(Key::Next),
                b'r' | b'R' => return Ok(Key::Repeat),
                b'b' | b'B' => return Ok(Key::Back),
                b'q' | b'Q' => return Ok(Key::Quit),
                _ => {}
            },
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
            Err(nix::errno::Errno::EIO) => return Err(Error::Interrupted(libc::SIGHUP)),
            Err(e) => return Err(nsx::error::sys("read", "standard input", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_asked_for_before_any_double_dash() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(json_in(args(&["tour", "--format", "json"]).into_iter()));
        assert!(json_in(
            args(&["--format=json", "lesson", "pdi"]).into_iter()
        ));
        assert!(!json_in(args(&["--format", "human", "tour"]).into_iter()));
        assert!(!json_in(
            args(&["--format", "json", "--format", "human"]).into_iter()
        ));
        assert!(!json_in(
            args(&["run", "--", "jq", "--format", "json"]).into_iter()
        ));
        assert!(!json_in(args(&["tour"]).into_iter()));
    }

    #[test]
    fn a_tour_records_refusals_and_failures_and_stops_only_when_interrupted() {
        let refused = tour_outcome(Err(Error::unsupported("read-only", "the fix")));
        assert!(
            matches!(&refused, Ok(TourOutcome::Refused { reason, fix }) if reason == "read-only" && fix == "the fix"),
            "{refused:?}"
        );
        let failed = tour_outcome(Err(nsx::error::sys(
            "mkdir",
            "/sys/fs/cgroup/x",
            nix::errno::Errno::EACCES,
        )));
        assert!(matches!(failed, Ok(TourOutcome::Failed(_))), "{failed:?}");
        let other = tour_outcome(Err(Error::Other("the probe said no".into())));
        assert!(matches!(other, Ok(TourOutcome::Failed(_))), "{other:?}");
        for end in [
            Error::Interrupted(libc::SIGINT),
            Error::Quit,
            Error::BrokenPipe,
            Error::Other(format!("{STDOUT_WRITE}: No space left on device")),
        ] {
            assert!(tour_outcome(Err(end)).is_err());
        }
    }

    #[test]
    fn the_tour_exits_0_when_every_lesson_that_ran_held() {
        let lesson = &nsx::lessons::LESSONS[0];
        let row = |skipped: bool, failed: bool| render::human::TourRow {
            lesson,
            report: None,
            millis: 0.0,
            skipped: skipped.then(|| "no".to_string()),
            failed: failed.then(|| "boom".to_string()),
        };
        assert_eq!(tour_exit(&[row(true, false), row(true, false)]), 0);
        assert_eq!(tour_exit(&[row(true, false), row(false, true)]), 1);
    }
}
