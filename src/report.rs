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
}

impl Fact {
    pub fn new(id: &str, claim: impl Into<String>, holds: bool, observed: Value) -> Self {
        Fact {
            id: id.to_string(),
            claim: claim.into(),
            holds,
            observed,
        }
    }
}
