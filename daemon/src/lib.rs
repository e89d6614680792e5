//! consentry: an on-premises photo bank that can say, for every photo, whether
//! it may be published, and why.
//!
//! The daemon (`consentryd`) watches drop shares and runs the ingest pipeline;
//! the CLI (`consentry`) talks to the daemon or, when none runs, to the store.
//! See `ARCHITECTURE.md` at the repository root for the codemap.

pub mod api;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod consent;
pub mod console;
pub mod control;
pub mod daemon;
pub mod domain;
pub mod dsr;
pub mod export;
pub mod logging;
pub mod notify;
pub mod people;
pub mod pipeline;
pub mod prepare;
pub mod register;
pub mod systemd;
pub mod workers;
