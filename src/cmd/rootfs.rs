//! `nsx rootfs`: build or import an image.

use crate::cmd::output::out;
use nsx::cli::{Format, RootfsCommand};
use nsx::error::Result;

/// What `nsx rootfs import` did, with what it left out by default and why.
pub(crate) fn import_summary(
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

pub(crate) fn rootfs(format: Format, cmd: &RootfsCommand) -> Result<i32> {
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
