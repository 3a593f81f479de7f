//! What makes an automation fire (issue 21; `jobs::automations` fires them,
//! docs/triggers.md says how).
//!
//! A [`Schedule`] is a five-field cron expression read in an IANA time zone
//! (`croner` parses it, `chrono-tz` knows the zones); it answers "the first
//! tick strictly after this instant". Arrival and watched-folder triggers
//! wait for a quiet period ([`QuietPeriod`]) after the last change before
//! they fire, capped so that a steady stream still fires.

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};

/// The longest cron expression accepted, in bytes.
pub const MAX_CRON_BYTES: usize = 256;

/// A cron schedule in a time zone.
#[derive(Clone)]
pub struct Schedule {
    /// The expression as given (trimmed).
    text: String,
    cron: Cron,
    zone: chrono_tz::Tz,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?} in {})", self.text, self.zone)
    }
}

/// Why a schedule was refused: which of the two parts, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{0}")]
    Cron(String),
    #[error("{0}")]
    TimeZone(String),
}

impl Schedule {
    /// Parses `cron` (five fields, or a nickname such as `@daily`) in
    /// `time_zone` (an IANA name; empty means UTC).
    pub fn parse(cron: &str, time_zone: &str) -> Result<Schedule, ScheduleError> {
        let text = cron.trim();
        if text.is_empty() {
            return Err(ScheduleError::Cron("is required".into()));
        }
        if text.len() > MAX_CRON_BYTES || text.chars().any(char::is_control) {
            return Err(ScheduleError::Cron(format!(
                "must be at most {MAX_CRON_BYTES} printable characters"
            )));
        }
        if !text.starts_with('@') && text.split_whitespace().count() != 5 {
            return Err(ScheduleError::Cron(
                "must have five fields: minute hour day-of-month month day-of-week".into(),
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|e| ScheduleError::Cron(format!("is not a cron expression: {e}")))?;
        let zone_name = match time_zone.trim() {
            "" => "UTC",
            name => name,
        };
        let zone: chrono_tz::Tz = zone_name.parse().map_err(|_| {
            ScheduleError::TimeZone(format!("{zone_name:?} is not an IANA time zone"))
        })?;
        let schedule = Schedule {
            text: text.to_string(),
            cron,
            zone,
        };
        // An expression that can never match (Feb 30) would never fire.
        if schedule.next_after(Utc::now()).is_none() {
            return Err(ScheduleError::Cron("never matches any time".into()));
        }
        Ok(schedule)
    }

    /// The cron expression, as given (trimmed).
    pub fn expression(&self) -> &str {
        &self.text
    }

    /// The time zone's name.
    pub fn zone_name(&self) -> &'static str {
        self.zone.name()
    }

    /// The first tick strictly after `instant` (None: there is none, in the
    /// next few years).
    pub fn next_after(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = instant.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }
}

/// How long a folder must stay quiet before its automation fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietPeriod(Duration);

impl QuietPeriod {
    pub const DEFAULT: QuietPeriod = QuietPeriod(Duration::from_secs(5));
    pub const MIN: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(3600);
    /// A steady stream of changes fires at the latest this many quiet
    /// periods after the first one.
    pub const CAP_FACTOR: u32 = 10;

    /// `None` is the default; outside [MIN, MAX] is an error.
    pub fn new(period: Option<Duration>) -> Result<QuietPeriod, String> {
        match period {
            None => Ok(QuietPeriod::DEFAULT),
            Some(p) if (Self::MIN..=Self::MAX).contains(&p) => Ok(QuietPeriod(p)),
            Some(_) => Err("must be between 1 s and 1 h".into()),
        }
    }

    pub fn get(self) -> Duration {
        self.0
    }

    /// When a folder that changed at `now`, with changes pending since
    /// `pending_since`, fires: a quiet period after the last change, but
    /// no later than CAP_FACTOR quiet periods after the first.
    pub fn due(self, now: DateTime<Utc>, pending_since: DateTime<Utc>) -> DateTime<Utc> {
        let quiet = chrono::Duration::from_std(self.0).expect("at most an hour");
        (now + quiet).min(pending_since + quiet * Self::CAP_FACTOR as i32)
    }
}

/// What makes an automation fire.
#[derive(Debug, Clone)]
pub enum Trigger {
    Schedule(Box<Schedule>),
    /// Uploads into `folder` (a normalized path inside the user's storage).
    Arrival {
        folder: String,
        quiet: QuietPeriod,
    },
    /// `folder` changed on disk.
    WatchedFolder {
        folder: String,
        quiet: QuietPeriod,
    },
}

impl Trigger {
    pub fn kind(&self) -> super::TriggerKind {
        match self {
            Trigger::Schedule(_) => super::TriggerKind::Schedule,
            Trigger::Arrival { .. } => super::TriggerKind::Arrival,
            Trigger::WatchedFolder { .. } => super::TriggerKind::WatchedFolder,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn ticks_are_read_in_the_time_zone() {
        let s = Schedule::parse("0 9 * * *", "Europe/Paris").unwrap();
        // 2026-07-01 06:00 UTC is 08:00 in Paris (CEST): next 09:00 Paris = 07:00 UTC.
        let now = Utc.with_ymd_and_hms(2026, 7, 1, 6, 0, 0).unwrap();
        assert_eq!(
            s.next_after(now),
            Some(Utc.with_ymd_and_hms(2026, 7, 1, 7, 0, 0).unwrap())
        );
        // Strictly after: at a tick, the next one.
        let at = Utc.with_ymd_and_hms(2026, 7, 1, 7, 0, 0).unwrap();
        assert_eq!(
            s.next_after(at),
            Some(Utc.with_ymd_and_hms(2026, 7, 2, 7, 0, 0).unwrap())
        );
        let utc = Schedule::parse("*/15 * * * *", "").unwrap();
        assert_eq!(utc.zone_name(), "UTC");
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 7, 30).unwrap();
        assert_eq!(
            utc.next_after(now),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 15, 0).unwrap())
        );
    }

    #[test]
    fn bad_expressions_and_zones_say_which() {
        for cron in [
            "",
            "   ",
            "* * * *",
            "* * * * * *",
            "61 * * * *",
            "* 25 * * *",
            "bogus",
            "0 0 30 2 *",
            "* * * * \u{0}",
        ] {
            assert!(
                matches!(Schedule::parse(cron, "UTC"), Err(ScheduleError::Cron(_))),
                "{cron:?}"
            );
        }
        let long = format!("{} * * * *", "1,".repeat(200) + "1");
        assert!(matches!(
            Schedule::parse(&long, "UTC"),
            Err(ScheduleError::Cron(_))
        ));
        for zone in ["Mars/Olympus", "utc+1", "../etc/passwd", "Europe/"] {
            assert!(
                matches!(
                    Schedule::parse("0 * * * *", zone),
                    Err(ScheduleError::TimeZone(_))
                ),
                "{zone:?}"
            );
        }
        assert!(Schedule::parse("@daily", "America/New_York").is_ok());
    }

    #[test]
    fn a_quiet_period_is_capped() {
        let q = QuietPeriod::new(Some(Duration::from_secs(5))).unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(q.due(t0, t0), t0 + chrono::Duration::seconds(5));
        let later = t0 + chrono::Duration::seconds(48);
        assert_eq!(q.due(later, t0), t0 + chrono::Duration::seconds(50));
        assert!(QuietPeriod::new(Some(Duration::from_millis(10))).is_err());
        assert!(QuietPeriod::new(Some(Duration::from_secs(7200))).is_err());
        assert_eq!(QuietPeriod::new(None).unwrap(), QuietPeriod::DEFAULT);
    }
}
