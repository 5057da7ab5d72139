//! The report a lesson returns: steps with both views, and the facts computed from them.
//!
//! This is the JSON contract (`nsx lesson <id> --format json`): `lesson`, `ok`,
//! `privilege`, `facts[] {id, claim, holds}` and `steps[] {id, host, container}` are
//! stable; other fields may be added.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::observe::View;

/// Whether nsx ran as root or created a user namespace to run without privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    Root,
    Rootless,
}

impl Privilege {
    pub fn current() -> Self {
        if nix::unistd::geteuid().is_root() {
            Privilege::Root
        } else {
            Privilege::Rootless
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub lesson: String,
    pub title: String,
    pub mechanism: String,
    /// True exactly when every fact holds.
    pub ok: bool,
    pub privilege: Privilege,
    /// Things the reader must know about this run (e.g. "a user namespace was added").
    #[serde(default)]
    pub notes: Vec<String>,
    pub steps: Vec<Step>,
    pub facts: Vec<Fact>,
}

impl Report {
    pub fn held(&self) -> usize {
        self.facts.iter().filter(|f| f.holds).count()
    }
}

/// One run of the probe: what was done, and what each side saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Stable id: "before", "after", "control", ...
    pub id: String,
    pub title: String,
    /// The system calls and file writes this step made, in order, as a student would type them.
    pub actions: Vec<String>,
    /// The rows shown side by side, derived from the two views.
    pub rows: Vec<Row>,
    /// Sentences computed from this step's observations.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Lesson-specific values the probe reported besides its view (e.g. getpid()).
    /// `"columns": [a, b]` renames the two table columns when they are not the host's
    /// and the container's view of one thing (the cost lesson's time and bar).
    #[serde(default)]
    pub extra: Value,
    /// What the host saw of the probe (through /proc/<pid>) and of itself.
    pub host: View,
    /// What the probe saw of itself (through its own /proc/self).
    pub container: View,
}

/// One line of the side-by-side table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub label: String,
    pub host: String,
    pub container: String,
}

impl Row {
    pub fn new(label: impl Into<String>, host: impl ToString, container: impl ToString) -> Self {
        Row {
            label: label.into(),
            host: host.to_string(),
            container: container.to_string(),
        }
    }

    /// The two sides disagree: the renderer highlights these.
    pub fn differs(&self) -> bool {
        self.host != self.container
    }
}

/// A teaching point, checked against this run's observations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fact {
    pub id: String,
    pub claim: String,
    pub holds: bool,
    /// The observed values the verdict was computed from.
    pub observed: Value,
    /// Why this run could not judge the claim, when it does not hold for a reason that
    /// is not the kernel's (a measurement starved by a busy machine). `holds` stays
    /// false; such a fact alone does not make the report fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive: Option<String>,
}

impl Fact {
    pub fn new(id: &str, claim: impl Into<String>, holds: bool, observed: Value) -> Self {
        Fact {
            id: id.to_string(),
            claim: claim.into(),
            holds,
            observed,
            inconclusive: None,
        }
    }

    /// Marks a fact that does not hold as inconclusive, with `reason`, when `starved`
    /// says its measurement could not show anything. A fact that holds stays as it is.
    pub fn inconclusive_when(mut self, starved: bool, reason: impl FnOnce() -> String) -> Self {
        if !self.holds && starved {
            self.inconclusive = Some(reason());
        }
        self
    }

    /// Did not hold, and nothing explains it but the kernel.
    pub fn fails(&self) -> bool {
        !self.holds && self.inconclusive.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fact_that_does_not_hold_can_be_inconclusive() {
        let starved = || "the machine was busy".to_string();
        let held = Fact::new("a", "a", true, Value::Null).inconclusive_when(true, starved);
        assert!(held.inconclusive.is_none() && !held.fails());
        let failed = Fact::new("b", "b", false, Value::Null).inconclusive_when(false, starved);
        assert!(failed.fails());
        let unjudged = Fact::new("c", "c", false, Value::Null).inconclusive_when(true, starved);
        assert!(!unjudged.holds && !unjudged.fails());
        let json = serde_json::to_value(&unjudged).unwrap();
        assert_eq!(json["inconclusive"], "the machine was busy");
        assert_eq!(json["holds"], false);
        // Absent from the JSON of every other fact.
        assert!(serde_json::to_value(&held)
            .unwrap()
            .get("inconclusive")
            .is_none());
    }
}
