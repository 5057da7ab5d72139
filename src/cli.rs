//! The command line, defined once with clap's derive API.

use clap::builder::PossibleValuesParser;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::lessons;
use crate::sandbox::veth::Subnet30;

#[derive(Debug, Parser)]
#[command(
    name = "nsx",
    version,
    about = "See how Linux containers work, one mechanism at a time",
    long_about = "nsx switches on one Linux isolation mechanism at a time (a namespace, a cgroup limit, a root filesystem), runs a probe inside, and shows what the host and the container each see, read from /proc, side by side. Every teaching point is a fact checked against this run.",
    after_help = concat!(
        "Examples:\n",
        "  nsx lessons                   list the lessons and whether they run here\n",
        "  sudo nsx lesson pid           run the PID-namespace lesson\n",
        "  nsx lesson uts --explain      read the lesson's story first, then run it\n",
        "  sudo nsx tour --step          every lesson, pausing between steps (a live class)\n",
        "  nsx lesson mount --format json\n",
        "  nsx doctor                    what this machine offers, and the fix for each blocked lesson\n",
        "  sudo nsx ps                   every container on this host, as a group of processes\n",
        "\n",
        "Exit status:\n",
        "  0    every fact held (nsx lesson, tour), or the command did what was asked\n",
        "  1    a fact did not hold, or something failed (the error says what and why)\n",
        "  2    usage error: the valid choices are named\n",
        "  77   not supported on this machine (kernel, privileges, cgroup mode): the reason and the fix\n",
        "  128+N  interrupted by signal N (130: Ctrl-C, 129: the terminal hung up)\n",
        "\n",
        "Environment:\n",
        "  NO_COLOR   set and not empty: no colour (unless --color always)\n",
        "  COLUMNS    the width to fit human output to (before the terminal's; --width wins)\n",
        "  TMPDIR     where lessons make their temporary directories (used only when absolute,\n",
        "             a directory, and not one other users could rename them; else /tmp)\n",
        "  SUDO_UID   under sudo: the user whose directories nsx may fill (nsx rootfs, man),\n",
        "             and the unprivileged user the user lesson acts as"
    )
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

/// The flags every command takes, before or after its name.
#[derive(Debug, Args)]
pub struct Global {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// When to use colour (NO_COLOR in the environment means never, unless --color=always).
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,

    /// Fit human output to N columns [default: $COLUMNS, else the terminal's width, else 80]
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(40..=1000))]
    pub width: Option<u16>,

    /// For a projector: no `$` command lines and no fact ids.
    #[arg(long, global = true)]
    pub compact: bool,
}

impl Cli {
    /// Parses `args` (the program's name first), as `Cli::try_parse_from` does.
    ///
    /// A command line naming a lesson (`nsx lesson pid ...`) is first parsed against a
    /// command holding only `lesson` and that lesson's subcommand: building every command
    /// and lesson, each with its own options and the global flags copied into it, was the
    /// larger part of nsx's start-up. What the narrow command accepts means the same to
    /// the full one (it lacks only subcommands the words did not name); what it refuses,
    /// help and version included, is parsed again by the full command, so errors,
    /// suggestions and help read as before.
    pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::FromArgMatches;
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        if let Some(lesson) = named_lesson(&args) {
            if let Ok(cli) = narrow_command(lesson)
                .try_get_matches_from(&args)
                .and_then(|m| Cli::from_arg_matches(&m))
            {
                return Ok(cli);
            }
        }
        Cli::try_parse_from(&args)
    }

    /// How wide human output may be, and how much of it to show.
    pub fn fmt(&self) -> crate::render::text::Fmt {
        crate::render::text::Fmt::detect(self.global.width.map(usize::from), self.global.compact)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every lesson in curriculum order and whether this machine can run it.
    #[command(after_help = "Example:\n  nsx lessons --format json")]
    Lessons,
    /// Run one lesson: before and after, host and container side by side, then the facts.
    #[command(
        after_help = "Examples:\n  sudo nsx lesson pid\n  nsx lesson uts --hostname box1 --step\n  nsx lesson mount --format json | jq .ok\n  sudo nsx lesson net --veth-net 169.254.42.0/30"
    )]
    Lesson(LessonArgs),
    /// Run every lesson this machine supports, in curriculum order, then a summary.
    #[command(
        after_help = "Examples:\n  sudo nsx tour --step          a live demo: Enter moves on, r repeats a step, b goes back, q quits\n  sudo nsx tour --step --from net   resume a class at the net lesson\n  nsx tour --only pid,uts       two lessons\n  nsx tour --skip cpu,cost      the quick tour\n  nsx tour --format json | jq '.[] | {lesson, ok}'"
    )]
    Tour(TourArgs),
    /// Check what this machine offers the lessons, with the fix for each that cannot run.
    ///
    /// Kernel version; cgroup mode (v1, hybrid, v2), controllers and what is delegated to
    /// you; user, time and other namespaces; overlayfs; whether nsx runs in a container,
    /// WSL or a VM; then, for every lesson, "runs rootless", "runs as root" or "blocked",
    /// with the reason and the exact fix. It only reads: nothing is created.
    #[command(
        after_help = "Examples:\n  nsx doctor\n  sudo nsx doctor               the rootless verdicts are then for the user who ran sudo\n  nsx doctor --format json | jq '.lessons[] | {id, verdict}'"
    )]
    Doctor,
    /// Show how one process is isolated: namespaces, cgroups, limits, capabilities.
    ///
    /// Which of its namespaces differ from nsx's own, its cgroups and their limits (v1 and
    /// v2), its uid and gid maps, capabilities, seccomp mode, and its PID in each nested
    /// PID namespace. Works on any process of the host, a container's included.
    #[command(
        after_help = "Examples:\n  sudo nsx inspect 4242\n  sudo nsx inspect $(pgrep -n sleep) --format json\n\nExit status: 1 when the process does not exist or exits while it is read; 77 when the kernel refuses to show it (another user's process: run as root)."
    )]
    Inspect(InspectArgs),
    /// Which layer said no: for an operation that failed with EPERM or EACCES in a process.
    ///
    /// Reads the process's credentials, user namespace, capability sets, no_new_privs,
    /// seccomp mode and filters, security label and, when the operation names a file, the
    /// file's mode and owner (as the process sees it), and says for each layer whether it
    /// refuses the operation, could have, or cannot have, with the fix.
    #[command(
        alias = "explain-eperm",
        after_help = "Examples:\n  sudo nsx why 4242 mount\n  sudo nsx why $(pgrep -n sleep) hostname\n  sudo nsx why 4242 open /etc/shadow\n  nsx why 4242 keyctl --format json\n\nOperations: mount, sethostname, unshare, setns, keyctl, init_module, settimeofday, reboot, iopl, swapon, syslog, open_by_handle_at, chroot, ptrace, kill, setuid, setgid, bind, socket, ip, setpriority, setrlimit, mknod, bpf, seccomp, chown, chmod, open, write, execve, opendir, unlink (and their aliases: umount, hostname, insmod, date, cat, rm, ...).\n\nExit status: 2 for an unknown operation, or a path given to one that acts on no file; 1 when the process does not exist."
    )]
    Why(WhyArgs),
    /// List processes grouped by the namespaces they share: each container is a group.
    #[command(
        after_help = "Examples:\n  sudo nsx ps\n  sudo nsx ps --format json | jq '.groups[] | {differs, processes}'"
    )]
    Ps,
    /// The words the lessons use, explained (also a page of the book).
    Glossary,
    /// Print a completion script for a shell.
    #[command(
        after_help = "Examples:\n  nsx completions bash > /etc/bash_completion.d/nsx\n  nsx completions zsh > \"${fpath[1]}/_nsx\"\n  nsx completions fish > ~/.config/fish/completions/nsx.fish"
    )]
    Completions(CompletionsArgs),
    /// Print the man page, or write one page per command into a directory.
    #[command(
        after_help = "Examples:\n  nsx man | man -l -\n  nsx man --out-dir /usr/local/share/man/man1"
    )]
    Man(ManArgs),
    /// Run a command as PID 1 of a new container made of exactly the mechanisms asked for.
    #[command(
        after_help = "The container `docker run -it busybox /bin/sh` starts, made by nsx:\n  sudo nsx rootfs busybox /tmp/bb\n  sudo nsx run --all --rootfs /tmp/bb -it -- /bin/sh\n\nMore examples:\n  sudo nsx run --pid --mount -- ps      # PID 1 and a fresh /proc\n  sudo nsx run --uts --hostname box -- hostname\n  sudo nsx run --pid --memory 32M --cpus 0.2 --pids 8 -- sh -c 'echo limited'\n  sudo nsx run --cap-drop ALL -- sh -c 'hostname x'   # EPERM: no CAP_SYS_ADMIN (nsx why PID sethostname)\n\nThe exit status is the command's (128 + N when signal N killed it). SIGINT, SIGTERM and SIGHUP sent to nsx are forwarded to the container's PID 1. A PID 1 drops a signal it has no handler for (nsx lesson init); nsx says so, and a second such signal (or a hang-up of your terminal) SIGKILLs the container.\n\nWhen the command ends, nsx kills whatever it left running (nsx is a child subreaper: orphans come back to it), so everything nsx created (processes, namespaces, mounts, cgroups, pty) is gone.\n\nSafety: as root, the command runs with Docker's default capabilities (chown dac_override fowner fsetid kill setgid setuid setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap; no sys_admin; change it with --cap-add and --cap-drop), Docker's default seccomp profile and, with --pid --mount, Docker's masked and read-only paths. --cap-add SYS_ADMIN needs --uts and --mount, SYS_BOOT --pid, NET_ADMIN --net (or --user): nsx never lets the command rename, mount on, reboot or reconfigure the host. A --rootfs is mounted nosuid and nodev: a device node in it does not open and a setuid program in it does not change ids; /dev is a nodev tmpfs with the host's null, zero, full, random, urandom and tty bound in. --rootfs needs --pid, since the host's /proc would lead back to the host's /. -it needs a terminal on standard input."
    )]
    Run(RunArgs),
    /// Make a root filesystem for nsx run: from the host's static busybox, or a tarball.
    #[command(subcommand)]
    Rootfs(RootfsCommand),
}

#[derive(Debug, Subcommand)]
pub enum RootfsCommand {
    /// Build a minimal rootfs from the host's static busybox (Debian: busybox-static).
    #[command(
        after_help = "Example:\n  nsx rootfs busybox /tmp/bb && sudo nsx run --all --rootfs /tmp/bb -it -- sh"
    )]
    Busybox {
        /// A new directory (nsx creates it), or an empty one you own.
        dir: PathBuf,
    },
    /// Unpack a rootfs tarball (e.g. from docker export) without writing outside DIR.
    #[command(
        after_help = "Example:\n  docker export $(docker create alpine) > alpine.tar\n  sudo nsx rootfs import alpine.tar /tmp/alpine\n\nThe archive is unpacked into a private directory next to DIR and renamed to DIR once complete: a failed import leaves nothing. Device nodes are skipped and setuid/setgid bits cleared unless --keep-devices / --keep-setid say otherwise. A compressed archive (gzip, bzip2, xz, zstd, lz4) is refused with the command that decompresses it."
    )]
    Import {
        /// A plain (uncompressed) tar archive, or - for standard input (a pipe).
        tar: PathBuf,
        /// A new directory (nsx creates it), or an empty one you own.
        dir: PathBuf,
        /// Create the archive's device nodes (as root). By default they are skipped: a
        /// device node gives whoever can open it the device itself.
        #[arg(long)]
        keep_devices: bool,
        /// Keep set-user-ID and set-group-ID bits on files. By default they are cleared:
        /// an archive's setuid-root program would make any user root.
        #[arg(long)]
        keep_setid: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// New PID namespace: the command is PID 1 (with --mount, a fresh /proc).
    #[arg(long, help_heading = "Namespaces")]
    pub pid: bool,
    /// New mount namespace, / made private first.
    #[arg(long, help_heading = "Namespaces")]
    pub mount: bool,
    /// New UTS namespace (hostname: --hostname, default nsx).
    #[arg(long, help_heading = "Namespaces")]
    pub uts: bool,
    /// New IPC namespace.
    #[arg(long, help_heading = "Namespaces")]
    pub ipc: bool,
    /// New network namespace (only lo, brought up).
    #[arg(long, help_heading = "Namespaces")]
    pub net: bool,
    /// New user namespace (root inside is your uid outside; added anyway when not root).
    #[arg(long, help_heading = "Namespaces")]
    pub user: bool,
    /// New cgroup namespace, rooted at the container's cgroup.
    #[arg(long, help_heading = "Namespaces")]
    pub cgroupns: bool,
    /// New time namespace.
    #[arg(long, help_heading = "Namespaces")]
    pub time: bool,
    /// All of the above.
    #[arg(long, help_heading = "Namespaces")]
    pub all: bool,

    /// Memory limit, e.g. 32M, 1G.
    #[arg(long, value_name = "SIZE", value_parser = crate::limits::parse_memory, help_heading = "Limits (cgroups)")]
    pub memory: Option<u64>,
    /// CPU limit as a fraction of one CPU, e.g. 0.2.
    #[arg(long, value_name = "FRACTION", value_parser = crate::limits::parse_cpus, help_heading = "Limits (cgroups)")]
    pub cpus: Option<crate::limits::Cpus>,
    /// Maximum number of processes, e.g. 8.
    #[arg(long, value_name = "N", value_parser = crate::limits::parse_pids, help_heading = "Limits (cgroups)")]
    pub pids: Option<u64>,

    /// The container's root filesystem (needs --pid and --mount), mounted nosuid and nodev:
    /// nsx pivot_roots into it.
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Hostname inside (needs --uts).
    #[arg(long, value_parser = parse_hostname)]
    pub hostname: Option<String>,
    /// Keep standard input attached (without it the command reads /dev/null).
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a new pseudoterminal (with -i: an interactive shell; standard
    /// input must then be a terminal).
    #[arg(short, long)]
    pub tty: bool,

    /// Add a capability to Docker's default set (repeatable; any case, with or without
    /// CAP_, or ALL).
    #[arg(long = "cap-add", value_name = "CAP", value_parser = crate::run::security::parse_cap, help_heading = "Security (as docker run)")]
    pub cap_add: Vec<crate::caps::CapArg>,
    /// Drop a capability from Docker's default set (repeatable; ALL drops every one,
    /// then the --cap-add ones are added).
    #[arg(long = "cap-drop", value_name = "CAP", value_parser = crate::run::security::parse_cap, help_heading = "Security (as docker run)")]
    pub cap_drop: Vec<crate::caps::CapArg>,
    /// Every capability, no seccomp filter, no masked or read-only paths, a writable
    /// /sys. Unlike Docker, the host's devices are NOT bound into /dev (the container
    /// keeps nsx's small nodev /dev). Without --user it is host root: it needs --uts,
    /// --mount, --pid and --net, so that it cannot rename the host, mount on it, reboot
    /// it or change its network.
    #[arg(long, help_heading = "Security (as docker run)")]
    pub privileged: bool,
    /// no-new-privileges[=true|false] (default false, as Docker), or
    /// seccomp=PROFILE.json|unconfined (default: nsx's profiles/seccomp-default.json,
    /// Docker's default in effect). Docker's masked and read-only /proc and /sys paths are
    /// applied when the container has its own /proc: with --pid and --mount (or --all).
    #[arg(long = "security-opt", value_name = "OPT", value_parser = crate::run::security::parse_security_opt, help_heading = "Security (as docker run)")]
    pub security_opt: Vec<crate::run::security::SecurityOpt>,

    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub cmd: Vec<std::ffi::OsString>,
}

impl RunArgs {
    /// The options `nsx run` acts on.
    pub fn options(&self) -> crate::run::RunOptions {
        use nix::sched::CloneFlags as F;
        let mut ns = F::empty();
        for (on, flag) in [
            (self.pid, F::CLONE_NEWPID),
            (self.mount, F::CLONE_NEWNS),
            (self.uts, F::CLONE_NEWUTS),
            (self.ipc, F::CLONE_NEWIPC),
            (self.net, F::CLONE_NEWNET),
            (self.user, F::CLONE_NEWUSER),
            (self.cgroupns, F::CLONE_NEWCGROUP),
            (self.time, crate::run::CLONE_NEWTIME),
        ] {
            if on {
                ns |= flag;
            }
        }
        if self.all {
            ns |= crate::run::all_namespaces();
        }
        crate::run::RunOptions {
            namespaces: ns,
            limits: crate::limits::Limits {
                memory: self.memory,
                cpus: self.cpus,
                pids: self.pids,
            },
            rootfs: self.rootfs.clone(),
            hostname: self.hostname.clone(),
            interactive: self.interactive,
            tty: self.tty,
            security: crate::run::security::SecurityOptions {
                cap_add: self.cap_add.clone(),
                cap_drop: self.cap_drop.clone(),
                privileged: self.privileged,
                ..Default::default()
            }
            .with_opts(&self.security_opt),
            cmd: self.cmd.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The process to inspect, by its PID on this host (as ps shows it).
    #[arg(value_parser = clap::value_parser!(i32).range(1..))]
    pub pid: i32,
}

#[derive(Debug, Args)]
pub struct WhyArgs {
    /// The process in which the operation failed, by its PID on this host.
    #[arg(value_parser = clap::value_parser!(i32).range(1..))]
    pub pid: i32,
    /// The operation: a system call or a command that makes it (mount, hostname, open, ...).
    pub operation: String,
    /// The file the operation acted on, as the process sees it (relative to its working
    /// directory).
    pub path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write nsx.1 and nsx-<command>.1 into this directory instead of printing nsx.1.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct TourArgs {
    /// Wait for Enter between steps and between lessons (ignored when stdin is not a terminal).
    #[arg(long)]
    pub step: bool,

    /// Lessons to leave out, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = PossibleValuesParser::new(lessons::ids()))]
    pub skip: Vec<String>,

    /// Only these lessons, comma-separated, in curriculum order.
    #[arg(long, value_delimiter = ',', value_name = "ID,...", value_parser = PossibleValuesParser::new(lessons::ids()))]
    pub only: Vec<String>,

    /// Start at this lesson (to resume a class where it stopped).
    #[arg(long, value_name = "ID", value_parser = PossibleValuesParser::new(lessons::ids()))]
    pub from: Option<String>,

    /// Print each lesson's story (lessons/<id>.md) before it runs; with --step, pause
    /// after it.
    #[arg(long)]
    pub explain: bool,
}

/// `nsx` with only the global flags, `lesson` and `lesson`'s subcommand for `lesson`.
fn narrow_command(lesson: &lessons::Lesson) -> clap::Command {
    Global::augment_args(clap::Command::new("nsx"))
        .subcommand(lesson_args(clap::Command::new("lesson"), [lesson]))
}

/// The lesson a command line names: the first word after the first `lesson` that is not
/// a flag, if it is a lesson's id. A guess that may be wrong (`--record pid uts` names
/// uts): [`Cli::parse_args`] checks it by parsing.
fn named_lesson(args: &[std::ffi::OsString]) -> Option<&'static lessons::Lesson> {
    let after = args.iter().skip(1).skip_while(|a| *a != "lesson").skip(1);
    let id = after
        .map(|a| a.to_str())
        .find(|a| !a.is_some_and(|a| a.starts_with('-')))??;
    lessons::find(id)
}

/// `nsx lesson [ID] [OPTIONS]`: one subcommand per lesson, each with the lesson's own
/// options; the flags every lesson takes are global to `lesson`, so they may follow the id.
#[derive(Debug, Clone)]
pub struct LessonArgs {
    /// The lesson to run; none lists the lessons.
    pub id: Option<String>,
    /// Print the lesson's story (lessons/<id>.md) before running it.
    pub explain: bool,
    /// Wait for Enter between steps.
    pub step: bool,
    /// Write what this run observed to this new file.
    pub record: Option<PathBuf>,
    /// Show a recorded run instead of measuring.
    pub replay: Option<PathBuf>,
    /// The lesson's own options, as its subcommand parsed them.
    pub matches: clap::ArgMatches,
}

impl clap::FromArgMatches for LessonArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let (id, matches) = match m.subcommand() {
            Some((id, sub)) => (Some(id.to_string()), sub.clone()),
            None => (None, m.clone()),
        };
        Ok(LessonArgs {
            id,
            explain: matches.get_flag("explain"),
            step: matches.get_flag("step"),
            record: matches.get_one::<PathBuf>("record").cloned(),
            replay: matches.get_one::<PathBuf>("replay").cloned(),
            matches,
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for LessonArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        lesson_args(cmd, lessons::LESSONS)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// `nsx lesson`'s own flags, and one subcommand for each of `lessons`.
fn lesson_args<'a>(
    cmd: clap::Command,
    lessons: impl IntoIterator<Item = &'a lessons::Lesson>,
) -> clap::Command {
    use clap::{Arg, ArgAction};
    cmd.subcommand_value_name("ID")
        .disable_help_subcommand(true)
        .subcommand_help_heading("Lessons")
        .arg(
            Arg::new("explain")
                .long("explain")
                .global(true)
                .action(ArgAction::SetTrue)
                .help("Print the lesson's story (lessons/<id>.md) before running it"),
        )
        .arg(
            Arg::new("step")
                .long("step")
                .global(true)
                .action(ArgAction::SetTrue)
                .help("Wait for Enter between steps, for live demos (ignored when stdin is not a terminal)"),
        )
        .arg(
            Arg::new("record")
                .long("record")
                .global(true)
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .conflicts_with("replay")
                .help("Write what this run observed to FILE (a new file), to replay it later anywhere"),
        )
        .arg(
            Arg::new("replay")
                .long("replay")
                .global(true)
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Show a run recorded with --record instead of measuring: no privileges needed, and the output says where it was recorded"),
        )
        .subcommands(lessons.into_iter().map(|l| l.command()))
}

pub fn parse_veth_net(s: &str) -> Result<Subnet30, String> {
    s.parse()
}

/// sethostname(2) takes at most HOST_NAME_MAX (64) bytes; keep it printable.
pub fn parse_hostname(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !s.starts_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(
            "expected 1 to 64 characters of letters, digits, '-' and '.', not starting with '-'"
                .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    proptest::proptest! {
        /// Any argv parses or is a clap error (usage: 2, --help/--version: 0), never a
        /// panic.
        #[test]
        fn random_argv_never_panics(args in proptest::collection::vec(".{0,16}", 0..6)) {
            let argv = std::iter::once("nsx".to_string()).chain(args);
            if let Err(e) = Cli::try_parse_from(argv) {
                proptest::prop_assert!(matches!(e.exit_code(), 0 | 2), "{}", e);
            }
        }

        /// The narrow parse of a lesson's command line means what the full one means,
        /// and what it refuses reads as the full command's refusal.
        #[test]
        fn a_lessons_command_line_parses_as_with_every_lesson(
            words in proptest::collection::vec(proptest::sample::select(vec![
                "lesson", "pid", "uts", "memory", "net", "--memory", "64M", "--hostname",
                "box", "--record", "--replay", "f.json", "--step", "--explain", "--format",
                "json", "--help", "-h", "--compact", "--no-veth", "--", "run", "x", "--version",
            ]), 0..7)
        ) {
            let argv: Vec<&str> = std::iter::once("nsx").chain(words.iter().copied()).collect();
            let full = Cli::try_parse_from(&argv);
            let narrow = Cli::parse_args(&argv);
            match (full, narrow) {
                (Ok(f), Ok(n)) => proptest::prop_assert_eq!(format!("{f:?}"), format!("{n:?}")),
                (Err(f), Err(n)) => proptest::prop_assert_eq!(f.to_string(), n.to_string()),
                (f, n) => proptest::prop_assert!(false, "{:?}: {:?} vs {:?}", argv, f.is_ok(), n.is_ok()),
            }
        }

        #[test]
        fn pids_parse_only_when_positive(pid in proptest::num::i64::ANY) {
            let r = Cli::try_parse_from(["nsx", "inspect", &pid.to_string()]);
            let ok = pid >= 1 && pid <= i32::MAX as i64;
            proptest::prop_assert_eq!(r.is_ok(), ok, "{}", pid);
        }
    }

    #[test]
    fn each_lessons_narrow_command_is_consistent_and_parses_as_the_full_one() {
        use clap::FromArgMatches;
        for lesson in lessons::LESSONS {
            narrow_command(lesson).debug_assert();
        }
        for argv in [
            &["nsx", "lesson", "pid"][..],
            &[
                "nsx",
                "--format",
                "json",
                "lesson",
                "uts",
                "--hostname",
                "box",
                "--compact",
            ],
            &[
                "nsx",
                "lesson",
                "--step",
                "memory",
                "--memory",
                "64M",
                "--width=100",
            ],
            &[
                "nsx",
                "lesson",
                "net",
                "--no-veth",
                "--record",
                "n.json",
                "--color",
                "never",
            ],
            &["nsx", "lesson", "cpu", "--explain", "--format=json"],
        ] {
            let lesson = lessons::find(argv.iter().find(|a| lessons::find(a).is_some()).unwrap());
            let matches = narrow_command(lesson.unwrap())
                .try_get_matches_from(argv)
                .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            let narrow = Cli::from_arg_matches(&matches).unwrap();
            let full = Cli::try_parse_from(argv).unwrap();
            assert_eq!(format!("{narrow:?}"), format!("{full:?}"), "{argv:?}");
        }
    }

    #[test]
    fn a_named_lesson_is_a_guess_the_parse_checks() {
        let named = |argv: &[&str]| {
            let argv: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
            named_lesson(&argv).map(|l| l.id)
        };
        assert_eq!(named(&["nsx", "lesson", "pid"]), Some("pid"));
        assert_eq!(
            named(&["nsx", "--format", "json", "lesson", "--step", "uts"]),
            Some("uts")
        );
        assert_eq!(
            named(&["nsx", "lesson", "--record", "pid", "uts"]),
            Some("pid")
        );
        assert_eq!(named(&["nsx", "lesson"]), None);
        assert_eq!(named(&["nsx", "lesson", "pdi"]), None);
        assert_eq!(named(&["nsx", "tour", "pid"]), None);
        // The guess was wrong: the full command parses, and records to a file named pid.
        let cli = Cli::parse_args(["nsx", "lesson", "--record", "pid", "uts"]).unwrap();
        let Command::Lesson(args) = cli.command else {
            panic!("a lesson")
        };
        assert_eq!(args.id.as_deref(), Some("uts"));
        assert_eq!(args.record, Some(PathBuf::from("pid")));
    }

    #[test]
    fn hostnames_are_checked() {
        assert!(parse_hostname("box-1.lab").is_ok());
        for bad in ["", "-x", "a b", &"x".repeat(65)] {
            assert!(parse_hostname(bad).is_err(), "{bad:?}");
        }
    }
}
