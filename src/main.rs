use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use nsx::cli::{Cli, Color, Command, Format, LessonArgs, RootfsCommand, TourArgs};
use nsx::error::{Error, Result};
use nsx::lessons::{self, Options};
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
        Err(e) => return clap_exit(&e),
    };
    set_colour(cli.color);
    signals::install();
    match run(&cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(Error::BrokenPipe) => ExitCode::from(Error::BrokenPipe.exit_code() as u8),
        Err(e) => {
            nsx::warn!("nsx: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// clap's own output (--help, --version, a usage error), written without ever
/// panicking. Help that cannot be written is an error (exit 1, or 141 quietly for a
/// closed pipe, as for any output of nsx); a usage error keeps exit 2 even when standard
/// error cannot take its message.
fn clap_exit(e: &clap::Error) -> ExitCode {
    let code = e.exit_code();
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
            _ => Error::Other(format!("write to standard output: {e}")),
        })
}

fn run(cli: &Cli) -> Result<i32> {
    match &cli.command {
        Command::Lessons => {
            let rows: Vec<_> = lessons::LESSONS.iter().map(|l| (l, l.support())).collect();
            match cli.format {
                Format::Human => out(&render::human::lessons(&rows))?,
                Format::Json => {
                    let list: Vec<_> = rows
                        .iter()
                        .map(|(l, support)| {
                            serde_json::json!({
                                "id": l.id,
                                "title": l.title,
                                "mechanism": l.mechanism,
                                "needs": match l.rootless { lessons::Rootless::Yes => "rootless", lessons::Rootless::No(_) => "root" },
                                "supported": support,
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
        Command::Lesson(args) => lesson(cli.format, args),
        Command::Tour(args) => tour(cli.format, args),
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
        Command::Ps => {
            let ps = inspect::ps(std::path::Path::new("/proc"))?;
            match cli.format {
                Format::Human => out(&inspect::render::ps(&ps))?,
                Format::Json => out(&json(&ps))?,
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

/// Runs one lesson, printing its human output as it goes (header, each step, footer).
fn run_one(
    lesson: &'static lessons::Lesson,
    options: Options,
    format: Format,
    pause: bool,
) -> Result<nsx::report::Report> {
    let human = format == Format::Human;
    if human {
        out(&render::human::header(
            lesson,
            nsx::report::Privilege::current(),
        ))?;
    }
    let mut number = 0;
    let mut on_step = |step: &nsx::report::Step| -> Result<()> {
        if !human {
            return Ok(());
        }
        number += 1;
        out(&render::human::step(step, number))?;
        if pause {
            pause_here("for the next step")?;
        }
        Ok(())
    };
    let report = lessons::run(lesson, options, &mut on_step)?;
    if human {
        out(&render::human::footer(&report))?;
    }
    Ok(report)
}

fn lesson(format: Format, args: &LessonArgs) -> Result<i32> {
    let lesson = lessons::find(&args.id)
        .ok_or_else(|| Error::Usage(format!("unknown lesson {}", args.id)))?;
    // A limit flag for another lesson would be silently ignored: refuse it instead.
    for (flag, owner) in args.limit_flags() {
        if owner != lesson.id {
            return Err(Error::Usage(format!(
                "{flag} belongs to the {owner} lesson (nsx lesson {owner} {flag} ...), not to {}",
                lesson.id
            )));
        }
    }
    let defaults = Options::default();
    let options = Options {
        hostname: args.hostname.clone(),
        veth_net: args.veth_net,
        veth: !args.no_veth,
        memory: args.memory.unwrap_or(defaults.memory),
        alloc: args.alloc.unwrap_or(defaults.alloc),
        cpus: args.cpus.unwrap_or(defaults.cpus),
        pids: args.pids.unwrap_or(defaults.pids),
    };
    lessons::check_options(lesson, &options)?;
    let pause = can_pause(args.step, format);
    if args.explain && format == Format::Human {
        out(lesson.narrative)?;
        out("\n")?;
    }
    let report = run_one(lesson, options, format, pause)?;
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

/// Every supported lesson in curriculum order, a recap after each, a summary at the end.
fn tour(format: Format, args: &TourArgs) -> Result<i32> {
    let pause = can_pause(args.step, format);
    let human = format == Format::Human;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for lesson in lessons::LESSONS
        .iter()
        .filter(|l| !args.skip.iter().any(|s| s == l.id))
    {
        if let lessons::Support::No { reason, fix } = lesson.support() {
            if human {
                out(&render::human::tour_skipped(lesson, &reason, &fix))?;
            }
            json.push(serde_json::json!({ "lesson": lesson.id, "skipped": true, "reason": reason, "fix": fix }));
            rows.push(render::human::TourRow {
                lesson,
                report: None,
                millis: 0.0,
                skipped: Some(reason),
            });
            continue;
        }
        let started = std::time::Instant::now();
        let report = run_one(lesson, Options::default(), format, pause)?;
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        if human {
            out(&render::human::recap(&report))?;
            if pause {
                pause_here("for the next lesson")?;
            }
        }
        json.push(serde_json::to_value(&report).expect("serialisable"));
        rows.push(render::human::TourRow {
            lesson,
            report: Some(report),
            millis,
            skipped: None,
        });
    }
    match format {
        Format::Human => out(&render::human::tour_summary(&rows))?,
        Format::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&json).expect("serialisable")
        ))?,
    }
    let all_ok = rows
        .iter()
        .all(|r| r.report.as_ref().is_none_or(|rep| rep.ok));
    Ok(if all_ok { 0 } else { 1 })
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
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
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
            Ok(0) => return Ok(()),
            Ok(_) if byte[0] == b'\n' => return Ok(()),
            Ok(_) | Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
            Err(nix::errno::Errno::EIO) => return Err(Error::Interrupted(libc::SIGHUP)),
            Err(e) => return Err(nsx::error::sys("read", "standard input", e)),
        }
    }
}
