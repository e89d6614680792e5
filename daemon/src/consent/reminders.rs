//! The reminder job: once a day (at `reminders.send_at`, local time) the
//! digest's new items go out by mail and/or webhook.
//!
//! Each item is recorded per channel (`ITEM@mail`, `ITEM@webhook`) after
//! that channel accepted it, and the day's run as `run:DATE` after every
//! channel succeeded; both are flushed, so a restart sends nothing twice. A
//! failed channel is retried at the next check without repeating the
//! channels that succeeded.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;

use super::reports::{Digest, DigestItem};
use super::{Result, Rights, RightsError};
use crate::config::RemindersConfig;
use crate::people::People;
use crate::pipeline::store::rights::SentReminder;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReminderRun {
    pub today: Option<Date>,
    /// Items in today's digest.
    pub items: usize,
    /// Items sent now, per channel.
    pub mailed: usize,
    pub posted: usize,
    /// Items every configured channel had already received.
    pub already_sent: usize,
    /// Why nothing could be sent, when so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn channel_key(item: &DigestItem, channel: &str) -> String {
    format!("{}@{channel}", item.key)
}

/// Sends today's new items. Errors name the channel that failed.
pub fn run(
    rights: &Rights,
    people: &People,
    config: &RemindersConfig,
    today: Date,
) -> Result<ReminderRun> {
    let digest = rights.digest(people, today)?;
    let store = rights.store();
    let mut run = ReminderRun {
        today: Some(today),
        items: digest.items.len(),
        ..ReminderRun::default()
    };
    let mut channels = Vec::new();
    if config.smtp.is_some() {
        channels.push("mail");
    }
    if config.webhook.is_some() {
        channels.push("webhook");
    }
    if channels.is_empty() {
        run.note = Some(
            "no [reminders.smtp] or [reminders.webhook] configured: nothing is sent (see `consentry report expiring`)".into(),
        );
        return Ok(run);
    }
    let mut errors = Vec::new();
    let mut any_new = false;
    for channel in &channels {
        let mut new = Vec::new();
        for item in &digest.items {
            if store.reminder_sent(&channel_key(item, channel))?.is_none() {
                new.push(item.clone());
            }
        }
        if new.is_empty() {
            continue;
        }
        any_new = true;
        let part = Digest { today, items: new };
        let sent = match *channel {
            "mail" => {
                let (subject, text) = part.mail();
                crate::notify::send_mail(
                    config.smtp.as_ref().expect("checked above"),
                    &crate::notify::Mail { subject, text },
                )
            }
            _ => crate::notify::post_webhook(
                config.webhook.as_ref().expect("checked above"),
                &serde_json::json!({
                    "type": "consentry.reminders",
                    "today": today.to_string(),
                    "items": part.items,
                }),
            ),
        };
        match sent {
            Ok(()) => {
                let now = crate::clock::now_ms();
                let records: Vec<SentReminder> = part
                    .items
                    .iter()
                    .map(|i| SentReminder {
                        item: channel_key(i, channel),
                        sent_at_ms: now,
                        via: (*channel).to_owned(),
                    })
                    .collect();
                store.record_reminders(&records)?;
                if *channel == "mail" {
                    run.mailed = records.len();
                } else {
                    run.posted = records.len();
                }
            }
            Err(err) => errors.push(format!("{channel}: {err}")),
        }
    }
    if !any_new {
        run.already_sent = digest.items.len();
    }
    if !errors.is_empty() {
        return Err(RightsError::Refused(format!(
            "reminders not delivered ({}); they are retried at the next check",
            errors.join("; ")
        )));
    }
    store.record_reminders(&[SentReminder {
        item: format!("run:{today}"),
        sent_at_ms: crate::clock::now_ms(),
        via: channels.join(","),
    }])?;
    Ok(run)
}

/// Whether today's run is due: past `send_at` and not yet done today.
pub fn due(rights: &Rights, config: &RemindersConfig, now: Timestamp) -> Result<Option<Date>> {
    let local = now.to_zoned(rights.rules().time_zone.clone());
    let send_at = config.send_time().map_err(RightsError::Refused)?;
    if local.time() < send_at {
        return Ok(None);
    }
    let today = local.date();
    Ok(rights
        .store()
        .reminder_sent(&format!("run:{today}"))?
        .is_none()
        .then_some(today))
}
