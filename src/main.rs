use std::io::IsTerminal;
use std::process::ExitCode;

use nsx::cli::{Cli, Command, Format};
use nsx::error::{Error, Result};
use nsx::render;
use nsx::sandbox::signals;
use nsx::{doctor, inspect, manual};

mod cmd;

use crate::cmd::lesson::lesson;
use crate::cmd::lessons::list_lessons;
use crate::cmd::output::{json, out, set_colour, STDOUT_WAS_TERMINAL};
use crate::cmd::rootfs::rootfs;
use crate::cmd::tour::tour;
use crate::cmd::usage::{clap_exit, misplaced_lesson_flag, unknown_lesson, usage_json};

fn main() -> ExitCode {
    STDOUT_WAS_TERMINAL.get_or_init(|| std::io::stdout().is_terminal());
    let cli = match Cli::parse_args(std::env::args_os()) {
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
    set_colour(cli.global.color);
    signals::install();
    match run(&cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(Error::BrokenPipe) => ExitCode::from(Error::BrokenPipe.exit_code() as u8),
        // A presenter pressed q at a pause: everything was cleaned up on the way out.
        Err(Error::Quit) => ExitCode::SUCCESS,
        Err(e) => {
            nsx::warn!("nsx: {e}");
            if cli.global.format == Format::Json {
                // A script reading stdout learns why too (docs/json.md): a write that
                // fails here changes nothing, the exit code below says it all.
                let _ = out(&json(&e.json_outcome()));
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn run(cli: &Cli) -> Result<i32> {
    match &cli.command {
        Command::Lessons => list_lessons(cli.global.format, &cli.fmt()),
        Command::Lesson(args) => lesson(cli.global.format, &cli.fmt(), args),
        Command::Tour(args) => tour(cli.global.format, &cli.fmt(), args),
        Command::Doctor => {
            let report = doctor::report(doctor::host().clone());
            match cli.global.format {
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
            match cli.global.format {
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
            match cli.global.format {
                Format::Human => out(&nsx::why::render::why(&w))?,
                Format::Json => out(&json(&w))?,
            }
            Ok(0)
        }
        Command::Ps => {
            let ps = inspect::ps(std::path::Path::new("/proc"))?;
            match cli.global.format {
                Format::Human => out(&inspect::render::ps(&ps))?,
                Format::Json => out(&json(&ps))?,
            }
            Ok(0)
        }
        Command::Glossary => {
            match cli.global.format {
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
        Command::Rootfs(cmd) => rootfs(cli.global.format, cmd),
    }
}
