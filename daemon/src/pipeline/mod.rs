//! The ingest pipeline, one module per stage, in the order data flows:
//!
//! share drop → [`watch`] (file complete?) → [`queue`] (durable, leased) →
//! [`ingest`]: read + hash (dedupe) → [`store`] (encrypted original) →
//! [`decode`] (sniff, limits, orientation) → [`metadata`] → [`thumbs`] →
//! [`faces`] (seam for the face engine) → commit → post-action on the source.

pub mod decode;
pub mod faces;
pub mod ingest;
pub mod metadata;
pub mod queue;
pub mod store;
pub mod thumbs;
pub mod watch;
