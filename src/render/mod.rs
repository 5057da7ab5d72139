//! Renderers turn a `Report` (or one `Step` as it arrives) into text. They never read
//! /proc, so tests can render reports built from fixtures.

pub mod html;
pub mod human;
pub mod markdown;
pub mod text;

use crate::report::Report;

/// The JSON contract: one object per lesson, pretty-printed, with a trailing newline.
pub fn json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("a report always serialises");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests;
