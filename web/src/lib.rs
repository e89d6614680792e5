//! The HTTP surface of consentry (web console and `/api/v1`).
//!
//! Nothing is served yet: the console arrives with its own issue. This crate is
//! the seam it will fill. It will define the `Catalog` trait it needs and the
//! daemon will implement it, so `web` never depends on `daemon`.
