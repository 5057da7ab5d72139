//! `nsx lessons`: the curriculum and what each lesson needs on this machine.

use crate::cmd::output::out;
use nsx::cli::Format;
use nsx::error::Result;
use nsx::lessons;
use nsx::render;

/// `nsx lessons` (and a bare `nsx lesson`): every lesson and whether it runs here.
pub(crate) fn list_lessons(format: Format, fmt: &render::human::Fmt) -> Result<i32> {
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
