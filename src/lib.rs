//! nsx: an educational step-by-step isolation explorer.
//!
//! A container is an ordinary process with namespaces (what it can see), cgroups (what
//! it can use) and its own root filesystem. Each lesson switches on one mechanism, runs a
//! probe inside, and reads /proc from both sides:
//!
//! cli → lessons (run probes through `sandbox`, compare `observe` views into facts) →
//! `report::Report` → `render::{human, json}`.

pub mod caps;
pub mod cgroup;
pub mod cli;
pub mod diag;
pub mod doctor;
pub mod error;
pub mod fsat;
pub mod inspect;
pub mod lessons;
pub mod limits;
pub mod manual;
pub mod observe;
pub mod owner;
pub mod render;
pub mod report;
pub mod rootfs;
pub mod run;
pub mod sandbox;
pub mod tmp;

pub use error::{Error, Result};
