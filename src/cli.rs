//! The command line, defined once with clap's derive API.

use clap::builder::PossibleValuesParser;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::lessons;
use crate::limits;
use crate::sandbox::veth::Subnet30;

#[derive(Debug, Parser)]
#[command(
    name = "nsx",
    version,
    about = "See how Linux containers work, one mechanism at a time",
    long_about = "nsx switches on one Linux isolation mechanism at a time (a namespace, a cgroup limit, a root filesystem), runs a probe inside, and shows what the host and the container each see, read from /proc, side by side. Every teaching point is a fact checked against this run.",
    after_help = "Examples:\n  nsx lessons                   list the lessons and whether they run here\n  sudo nsx lesson pid           run the PID-namespace lesson\n  nsx lesson uts --explain      read the lesson's story first, then run it\n  nsx lesson mount --format json\n  nsx doctor                    what this machine offers, and the fix for each blocked lesson\n  sudo nsx ps                   every container on this host, as a group of processes"
)]
pub struct Cli {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// When to use colour (NO_COLOR in the environment means never, unless --color=always).
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,

    #[command(subcommand)]
    pub command: Command,
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
        after_help = "Examples:\n  sudo nsx tour --step          a live demo: Enter moves on\n  nsx tour --skip cpu,cost      the quick tour\n  nsx tour --format json | jq '.[] | {lesson, ok}'"
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
    /// List processes grouped by the namespaces they share: each container is a group.
    #[command(
        after_help = "Examples:\n  sudo nsx ps\n  sudo nsx ps --format json | jq '.groups[] | {differs, processes}'"
    )]
    Ps,
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
        after_help = "The seed's `docker run -it busybox /bin/sh`:\n  sudo nsx rootfs busybox /tmp/bb\n  sudo nsx run --all --rootfs /tmp/bb -it -- /bin/sh\n\nMore examples:\n  sudo nsx run --pid --mount -- ps      # PID 1 and a fresh /proc\n  sudo nsx run --uts --hostname box -- hostname\n  sudo nsx run --pid --memory 32M --cpus 0.2 --pids 8 -- sh -c 'echo limited'\n\nThe exit status is the command's (128 + N when signal N killed it). SIGINT, SIGTERM and SIGHUP sent to nsx are forwarded to the container's PID 1. A PID 1 drops a signal it has no handler for (nsx lesson init); nsx says so, and a second such signal (or a hang-up of your terminal) SIGKILLs the container.\n\nWhen the command ends, nsx kills whatever it left running (nsx is a child subreaper: orphans come back to it), so everything nsx created (processes, namespaces, mounts, cgroups, pty) is gone.\n\nSafety: as root, the command runs with Docker's default capabilities (chown dac_override fowner fsetid kill setgid setuid setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap; no sys_admin); options to add or drop capabilities are not there yet. A --rootfs is mounted nosuid and nodev: a device node in it does not open and a setuid program in it does not change ids; /dev is a nodev tmpfs with the host's null, zero, full, random, urandom and tty bound in. --rootfs needs --pid, since the host's /proc would lead back to the host's /. -it needs a terminal on standard input."
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
}

#[derive(Debug, Args)]
pub struct LessonArgs {
    /// The lesson to run.
    #[arg(value_parser = PossibleValuesParser::new(lessons::ids()))]
    pub id: String,

    /// Print the lesson's story (lessons/<id>.md) before running it.
    #[arg(long)]
    pub explain: bool,

    /// Wait for Enter between steps, for live demos (ignored when stdin is not a terminal).
    #[arg(long)]
    pub step: bool,

    /// The hostname the uts lesson sets inside its namespace.
    #[arg(long, default_value = "nsx-demo", value_parser = parse_hostname)]
    pub hostname: String,

    /// The /30 the net lesson puts its veth pair on: A.B.C.D/30 inside 169.254.0.0/16
    /// (link-local), never the one holding 169.254.169.254. Default: 169.254.73.0/30, or
    /// the next free /30 when another nsx run holds it.
    #[arg(long, value_name = "ADDR/30", value_parser = parse_veth_net)]
    pub veth_net: Option<Subnet30>,

    /// Skip the net lesson's veth step (namespaces only, nothing created on the host).
    #[arg(long)]
    pub no_veth: bool,

    /// memory lesson: the limit written into memory.max (v2) or memory.limit_in_bytes
    /// (v1), e.g. 32M, 1G (at least 1M) [default: 32M]
    #[arg(long, visible_alias = "limit", value_name = "SIZE", value_parser = limits::parse_memory, allow_hyphen_values = true)]
    pub memory: Option<u64>,

    /// memory lesson: how much the probe maps and writes, one byte per page, e.g. 64M
    /// (1M to 512M) [default: 64M]
    #[arg(long, value_name = "SIZE", value_parser = limits::parse_memory, allow_hyphen_values = true)]
    pub alloc: Option<u64>,

    /// cpu lesson: the CPU quota as a fraction of one CPU, written into cpu.max (v2) or
    /// cpu.cfs_quota_us (v1) per 100 ms period, e.g. 0.1 (at most 0.25) [default: 0.2]
    #[arg(long, value_name = "FRACTION", value_parser = limits::parse_cpus, allow_hyphen_values = true)]
    pub cpus: Option<limits::Cpus>,

    /// pids lesson: pids.max, the number of tasks the cgroup may hold, the probe included,
    /// e.g. 8 (at most 64) [default: 8]
    #[arg(long, value_name = "N", value_parser = limits::parse_pids, allow_hyphen_values = true)]
    pub pids: Option<u64>,
}

impl LessonArgs {
    /// The limit flags given, each with the lesson it belongs to.
    pub fn limit_flags(&self) -> Vec<(&'static str, &'static str)> {
        let mut given = Vec::new();
        if self.memory.is_some() {
            given.push(("--memory", "memory"));
        }
        if self.alloc.is_some() {
            given.push(("--alloc", "memory"));
        }
        if self.cpus.is_some() {
            given.push(("--cpus", "cpu"));
        }
        if self.pids.is_some() {
            given.push(("--pids", "pids"));
        }
        given
    }
}

fn parse_veth_net(s: &str) -> Result<Subnet30, String> {
    s.parse()
}

/// sethostname(2) takes at most HOST_NAME_MAX (64) bytes; keep it printable.
fn parse_hostname(s: &str) -> Result<String, String> {
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

        #[test]
        fn pids_parse_only_when_positive(pid in proptest::num::i64::ANY) {
            let r = Cli::try_parse_from(["nsx", "inspect", &pid.to_string()]);
            let ok = pid >= 1 && pid <= i32::MAX as i64;
            proptest::prop_assert_eq!(r.is_ok(), ok, "{}", pid);
        }
    }

    #[test]
    fn hostnames_are_checked() {
        assert!(parse_hostname("box-1.lab").is_ok());
        for bad in ["", "-x", "a b", &"x".repeat(65)] {
            assert!(parse_hostname(bad).is_err(), "{bad:?}");
        }
    }
}
