//! Consent, licences and the usage decision: may this photo be used for
//! purpose P on date D, and why (or why not)?

pub mod decide;
pub mod model;
