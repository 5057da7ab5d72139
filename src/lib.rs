//! nsx: an educational step-by-step isolation explorer.
//!
//! A container is an ordinary process with namespaces (what it can see), cgroups (what
//! it can use) and its own root filesystem. Each lesson switches on one mechanism, runs a
//! probe inside, and reads /proc from both sides.

pub mod cgroup;
pub mod error;

pub use error::{Error, Result};
