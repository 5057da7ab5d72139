//! The one integration-test binary: it runs the built `nsx` and never unshares or
//! clones in this (multi-threaded) process.

mod book;
mod cli;
mod common;
mod containers;
mod doctor;
mod fuzz;
mod inspect;
mod leaks;
mod lessons;
mod limits;
mod manual;
mod matrix;
mod presenter;
mod rootless;
mod run_safety;
mod safety;
mod signals;
mod tour;
mod why;
