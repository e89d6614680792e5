//! A data-subject request (DSR) case: who asked for what, when it is due, and
//! every action taken (GDPR Art. 12(3): one month from receipt, extendable by
//! two further months with reasons).

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// What the person asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Art. 15 access and Art. 20 portability: the access package.
    Access,
    /// Art. 17: erase (or redact) their photos, delete their templates.
    Erasure,
    /// Art. 18 restriction / Art. 21 objection: block every use.
    Restriction,
    /// Art. 16: correct the person record.
    Rectification,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Erasure => "erasure",
            Kind::Restriction => "restriction",
            Kind::Rectification => "rectification",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Closed,
}

/// At most this many months may be added to the one-month deadline.
pub const MAX_EXTENSION_MONTHS: i8 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub months: i8,
    pub reason: String,
    pub at_ms: u64,
    pub by: String,
}

/// One thing done on the case (also an audit event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseAction {
    pub at_ms: u64,
    pub by: String,
    pub action: String,
    pub details: BTreeMap<String, String>,
}

/// A face found for the case, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoundFace {
    /// `ASSET:NO`.
    pub face: String,
    pub asset: String,
    /// `confirmed` (a person decided), `suggested` (the matcher; to review),
    /// `similar` (a stored template near the reference photo; to review), or
    /// `scanned` (found by running the engine over a collection without
    /// recognition; to review).
    pub how: String,
    pub distance: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// `DSR-YYYY-NNNN`.
    pub id: String,
    pub person: String,
    pub kind: Kind,
    pub received: Date,
    pub due: Date,
    pub extensions: Vec<Extension>,
    pub status: Status,
    pub result: Option<String>,
    pub notes: Option<String>,
    pub found: Vec<FoundFace>,
    pub actions: Vec<CaseAction>,
    pub opened_at_ms: u64,
    pub opened_by: String,
    pub closed_at_ms: Option<u64>,
}

/// `received` plus one month and `extra_months`; a day that month lacks is
/// its last day (received 31 January: due 28 February, 29 in a leap year).
pub fn due_date(received: Date, extra_months: i8) -> Date {
    let months = 1 + i64::from(extra_months);
    received
        .checked_add(jiff::Span::new().months(months))
        .unwrap_or(Date::MAX)
}

impl Case {
    pub fn extended_months(&self) -> i8 {
        self.extensions.iter().map(|e| e.months).sum()
    }

    /// Extends the deadline; the total may not pass two months, and a reason
    /// is required (Art. 12(3): the person must be told why).
    pub fn extend(&mut self, months: i8, reason: &str, by: &str, at_ms: u64) -> Result<(), String> {
        if reason.trim().is_empty() {
            return Err("an extension needs a reason (the person must be told why)".into());
        }
        if months < 1 {
            return Err("extend by 1 or 2 months".into());
        }
        let total = self.extended_months() + months;
        if total > MAX_EXTENSION_MONTHS {
            return Err(format!(
                "the deadline may be extended by at most {MAX_EXTENSION_MONTHS} months in total \
                 (already {}); Art. 12(3)",
                self.extended_months()
            ));
        }
        if self.status == Status::Closed {
            return Err(format!("case {} is closed", self.id));
        }
        self.extensions.push(Extension {
            months,
            reason: reason.trim().to_owned(),
            at_ms,
            by: by.to_owned(),
        });
        self.due = due_date(self.received, total);
        Ok(())
    }

    pub fn overdue_on(&self, today: Date) -> bool {
        self.status == Status::Open && today > self.due
    }

    pub fn log(&mut self, by: &str, action: &str, details: BTreeMap<String, String>) {
        self.actions.push(CaseAction {
            at_ms: crate::clock::now_ms(),
            by: by.to_owned(),
            action: action.to_owned(),
            details,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn case(received: Date) -> Case {
        Case {
            id: "DSR-2027-0001".into(),
            person: "p".into(),
            kind: Kind::Access,
            received,
            due: due_date(received, 0),
            extensions: vec![],
            status: Status::Open,
            result: None,
            notes: None,
            found: vec![],
            actions: vec![],
            opened_at_ms: 0,
            opened_by: "dpo".into(),
            closed_at_ms: None,
        }
    }

    #[test]
    fn due_one_month_after_receipt_clamped_to_month_end() {
        assert_eq!(due_date(date(2027, 1, 31), 0), date(2027, 2, 28));
        assert_eq!(due_date(date(2028, 1, 31), 0), date(2028, 2, 29));
        assert_eq!(due_date(date(2027, 1, 15), 0), date(2027, 2, 15));
        assert_eq!(due_date(date(2027, 12, 31), 0), date(2028, 1, 31));
        assert_eq!(due_date(date(2027, 3, 31), 0), date(2027, 4, 30));
    }

    #[test]
    fn extension_needs_a_reason_and_stops_at_two_months() {
        let mut c = case(date(2027, 1, 31));
        assert!(c.extend(1, "  ", "dpo", 1).is_err());
        assert!(c.extend(3, "many photos", "dpo", 1).is_err());
        c.extend(1, "many photos", "dpo", 1).unwrap();
        assert_eq!(c.due, date(2027, 3, 31));
        c.extend(1, "still searching", "dpo", 2).unwrap();
        assert_eq!(c.due, date(2027, 4, 30));
        let err = c.extend(1, "more", "dpo", 3).unwrap_err();
        assert!(err.contains("at most 2 months"), "{err}");
        assert_eq!(c.extensions.len(), 2);
        assert_eq!(c.extensions[0].reason, "many photos");
    }

    #[test]
    fn overdue_only_after_the_due_day_and_while_open() {
        let mut c = case(date(2027, 1, 31));
        assert!(!c.overdue_on(date(2027, 2, 28)));
        assert!(c.overdue_on(date(2027, 3, 1)));
        c.status = Status::Closed;
        assert!(!c.overdue_on(date(2027, 3, 1)));
    }
}
