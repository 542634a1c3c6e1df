//! When `catsync serve` may start a run: a pipeline's `schedule` (the cron times at which new
//! runs start) and its `sync_windows` (Argo CD's allow and deny windows), the time arithmetic
//! over them, and the clock the controller reads (a file's time instead of the system's, so
//! tests move time without waiting for it).
//!
//! A window is open from each time its cron expression names, for its `duration` (elapsed
//! time, so a window crossing a daylight-saving change lasts what it says). Runs may start when
//! no deny window is open and, if the pipeline has allow windows, one of them is: deny wins.
//! Every function here is a pure function of the time it is given; only [`Clock`] reads one.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};
use serde::{Deserialize, Serialize};

/// How far ahead the next opening or closing is looked for: past it, a window "never" changes.
const HORIZON: SignedDuration = SignedDuration::from_hours(366 * 24);

/// At most this many openings and closings are walked through looking for the next change
/// (windows every minute, overlapping, would otherwise walk a year of them).
const MAX_STEPS: usize = 20_000;

/// Why a cron expression, a time zone or a duration is refused, and how to write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub hint: String,
}

/// Reads a cron expression of five fields (minute, hour, day of month, month, day of week),
/// as crontab and Argo CD write them; `@daily`-style nicknames too.
pub fn parse_cron(text: &str) -> Result<croner::Cron, Problem> {
    use croner::parser::{CronParser, Seconds, Year};
    let hint = "five fields: minute hour day-of-month month day-of-week, e.g. `0 */2 * * *` (every two hours), `30 1 * * MON-FRI`, `@daily`".to_string();
    let fields = text.split_whitespace().count();
    if !text.trim_start().starts_with('@') && fields != 5 {
        let message = format!("`{text}` is not a cron expression: it has {fields} field{}, not 5", plural(fields));
        return Err(Problem { message, hint });
    }
    let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
    let why = |e: croner::errors::CronError| {
        let why = match e {
            croner::errors::CronError::InvalidPattern(m)
            | croner::errors::CronError::IllegalCharacters(m)
            | croner::errors::CronError::ComponentError(m) => m,
            other => other.to_string(),
        };
        why.trim_end_matches('.').to_lowercase()
    };
    parser.parse(text).map_err(|e| {
        // The field at fault: the first that is refused alone, the others being `*`.
        let parts: Vec<&str> = text.split_whitespace().collect();
        let field = (0..parts.len().min(FIELDS.len())).find_map(|i| {
            let mut probe = ["*"; 5];
            probe[i] = parts[i];
            parser.parse(&probe.join(" ")).err().map(|e| (i, why(e)))
        });
        let message = match field {
            Some((i, why)) => {
                let (name, allowed) = FIELDS[i];
                format!(
                    "`{text}` is not a cron expression: the {name} field `{}`: {why} (allowed: {allowed})",
                    parts[i]
                )
            }
            None => format!("`{text}` is not a cron expression: {}", why(e)),
        };
        Problem { message, hint }
    })
}

/// The fields of a cron expression, in order, and the values each takes.
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L, W"),
    ("month", "1-12, JAN-DEC"),
    ("day-of-week", "0-7, SUN-SAT, L, #"),
];

/// A time zone by its IANA name (`Europe/Madrid`), or `UTC`; from the database built into
/// catsync, so the machine's own does not matter.
pub fn parse_timezone(name: &str) -> Result<TimeZone, Problem> {
    TimeZone::get(name).map_err(|_| {
        let names: Vec<String> = jiff::tz::db().available().map(|n| n.as_str().to_string()).collect();
        let hint = crate::diagnostics::did_you_mean(name, names.iter().map(String::as_str)).unwrap_or_else(|| {
            "write an IANA time zone name such as `Europe/Madrid` or `America/New_York`, or `UTC`".to_string()
        });
        Problem { message: format!("`{name}` is not a time zone"), hint }
    })
}

/// A window's length: `30m`, `6h` (the units of `poll_interval`), more than zero.
pub fn parse_window_duration(text: &str) -> Result<Duration, Problem> {
    let hint = "write a number with a unit: `30m`, `6h`, `48h`".to_string();
    match parse_duration(text) {
        Some(d) if d.is_zero() => {
            Err(Problem { message: "a sync window of zero length never opens".to_string(), hint })
        }
        Some(d) if SignedDuration::try_from(d).is_ok_and(|d| d <= HORIZON) => Ok(d),
        Some(_) => Err(Problem { message: format!("`{text}` is longer than a year"), hint }),
        None => Err(Problem { message: format!("`{text}` is not a duration"), hint }),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A cron expression in a time zone.
#[derive(Clone)]
pub struct Cron {
    text: String,
    timezone: TimeZone,
    cron: croner::Cron,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?} in {})", self.text, self.timezone_name())
    }
}

impl Cron {
    /// From what [`parse_cron`] and [`parse_timezone`] made of `text` and a time zone.
    pub fn new(text: &str, cron: croner::Cron, timezone: TimeZone) -> Cron {
        Cron { text: text.to_string(), timezone, cron }
    }

    /// `text` in UTC (or the reason it is not a cron expression).
    pub fn utc(text: &str) -> Result<Cron, Problem> {
        Ok(Cron::new(text, parse_cron(text)?, TimeZone::UTC))
    }

    /// `text` in the time zone `timezone` names.
    pub fn zoned(text: &str, timezone: &str) -> Result<Cron, Problem> {
        Ok(Cron::new(text, parse_cron(text)?, parse_timezone(timezone)?))
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn timezone_name(&self) -> &str {
        self.timezone.iana_name().unwrap_or("UTC")
    }

    /// The expression in English (croner's description).
    pub fn describe(&self) -> String {
        self.cron.describe()
    }

    fn at(&self, t: Timestamp) -> Zoned {
        t.to_zoned(self.timezone.clone())
    }

    /// The latest time it names at or before `t`.
    pub fn latest(&self, t: Timestamp) -> Option<Timestamp> {
        self.cron.find_previous_occurrence(&self.at(t), true).ok().map(|z| z.timestamp())
    }

    /// The first time it names after `t`.
    pub fn following(&self, t: Timestamp) -> Option<Timestamp> {
        self.cron.find_next_occurrence(&self.at(t), false).ok().map(|z| z.timestamp())
    }
}

/// What a sync window does while it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Runs may start only inside an allow window (when the pipeline has any).
    Allow,
    /// No run starts inside a deny window, and a run in progress pauses at its next batch.
    Deny,
}

impl WindowKind {
    pub fn name(self) -> &'static str {
        match self {
            WindowKind::Allow => "allow",
            WindowKind::Deny => "deny",
        }
    }
}

/// One of a pipeline's `sync_windows`.
#[derive(Debug, Clone)]
pub struct SyncWindow {
    pub kind: WindowKind,
    /// When it opens.
    pub cron: Cron,
    /// How long it stays open each time.
    pub duration: Duration,
}

impl SyncWindow {
    /// The opening of this window that holds `t`, as (start, end): the one from its latest
    /// start at or before `t` (each opening lasts as long, so none started earlier ends later,
    /// however long the duration is against the period).
    pub fn span_at(&self, t: Timestamp) -> Option<(Timestamp, Timestamp)> {
        let start = self.cron.latest(t)?;
        let end = add(start, self.duration);
        (t < end).then_some((start, end))
    }

    /// `allow 0 2 * * * for 1h (UTC)`.
    pub fn describe(&self) -> String {
        format!(
            "{} `{}` for {} ({})",
            self.kind.name(),
            self.cron.text(),
            humantime::format_duration(self.duration),
            self.cron.timezone_name()
        )
    }
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d).ok().and_then(|d| t.checked_add(d).ok()).unwrap_or(Timestamp::MAX)
}

/// A pipeline's `schedule` and `sync_windows`, compiled.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    /// When new runs start (`None`: at any poll that finds something to do).
    pub schedule: Option<Cron>,
    pub windows: Vec<SyncWindow>,
}

/// Whether runs may start at a time, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowState {
    pub open: bool,
    /// `no sync windows`, `inside allow window …`, `inside deny window …`, `outside every allow
    /// window`.
    pub why: String,
    /// When it next changes (opens if closed, closes if open), if it does within a year.
    pub until: Option<Timestamp>,
}

impl Timing {
    /// Whether the pipeline has a schedule or windows (without, runs start at any poll).
    pub fn is_set(&self) -> bool {
        self.schedule.is_some() || !self.windows.is_empty()
    }

    /// Whether runs may start at `t`: no deny window open and, if there are allow windows, one
    /// of them open.
    pub fn open_at(&self, t: Timestamp) -> bool {
        let open = |kind: WindowKind| self.windows.iter().filter(|w| w.kind == kind).any(|w| w.span_at(t).is_some());
        let has_allow = self.windows.iter().any(|w| w.kind == WindowKind::Allow);
        !open(WindowKind::Deny) && (!has_allow || open(WindowKind::Allow))
    }

    /// The first time after `t` at which a window opens or an open one closes: the only times
    /// [`Timing::open_at`] can change.
    fn next_change(&self, t: Timestamp) -> Option<Timestamp> {
        self.windows
            .iter()
            .flat_map(|w| [w.cron.following(t), w.span_at(t).map(|(_, end)| end)])
            .flatten()
            .filter(|&c| c > t)
            .min()
    }

    /// The first time at or after `t` when runs may start (`open`) or may not (`!open`),
    /// looked for up to a year ahead.
    pub fn next_time(&self, t: Timestamp, open: bool) -> Option<Timestamp> {
        let limit = t.checked_add(HORIZON).unwrap_or(Timestamp::MAX);
        let mut at = t;
        for _ in 0..MAX_STEPS {
            if self.open_at(at) == open {
                return Some(at);
            }
            at = self.next_change(at).filter(|&c| c <= limit)?;
        }
        None
    }

    /// Whether runs may start at `t`, why, and until when.
    pub fn window_at(&self, t: Timestamp) -> WindowState {
        let open = self.open_at(t);
        let until = if self.windows.is_empty() { None } else { self.next_time(t, !open) };
        let inside = |kind: WindowKind| self.windows.iter().find(|w| w.kind == kind && w.span_at(t).is_some());
        let why = if self.windows.is_empty() {
            "no sync windows".to_string()
        } else if let Some(deny) = inside(WindowKind::Deny) {
            format!("inside deny window {}", deny.describe())
        } else if let Some(allow) = inside(WindowKind::Allow) {
            format!("inside allow window {}", allow.describe())
        } else if open {
            "outside every deny window".to_string()
        } else {
            "outside every allow window".to_string()
        };
        WindowState { open, why, until }
    }

    /// The scheduled time a new run may use at `t`: the latest one at or before `t`, if it
    /// came after `acted` (the last one used, or found with nothing to do). Always `t` without
    /// a schedule.
    pub fn due(&self, t: Timestamp, acted: Option<Timestamp>) -> Option<Timestamp> {
        let Some(schedule) = &self.schedule else { return Some(t) };
        schedule.latest(t).filter(|&tick| acted.is_none_or(|acted| tick > acted))
    }

    /// When a new run may start next, at or after `t`: the scheduled time due now (or the next
    /// one), moved to the next opening of the windows if they are closed then.
    pub fn next_start(&self, t: Timestamp, acted: Option<Timestamp>) -> Option<Timestamp> {
        let from = match self.due(t, acted) {
            Some(_) => t,
            None => self.schedule.as_ref()?.following(t)?,
        };
        self.next_time(from, true)
    }

    /// The next time after `t` at which what a worker decides may change: a scheduled time, a
    /// window opening or closing.
    pub fn next_event(&self, t: Timestamp) -> Option<Timestamp> {
        let tick = self.schedule.as_ref().and_then(|s| s.following(t));
        [tick, self.next_change(t)].into_iter().flatten().min()
    }
}

/// Where the controller reads the time its schedules and windows are judged at.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// The environment variable naming a [`FileClock`]'s file: tests set it to move the time
/// `catsync serve` judges schedules and windows at (runs' own timestamps stay the system's).
pub const CLOCK_FILE_VAR: &str = "CATSYNC_CLOCK_FILE";

/// A clock reading an RFC 3339 time (`2026-01-10T02:00:00Z`) from a file at every look; the
/// system's time while the file is missing or unreadable.
pub struct FileClock(pub PathBuf);

impl Clock for FileClock {
    fn now(&self) -> Timestamp {
        std::fs::read_to_string(&self.0).ok().and_then(|t| t.trim().parse().ok()).unwrap_or_else(Timestamp::now)
    }
}

/// The clock of this process: a [`FileClock`] when [`CLOCK_FILE_VAR`] is set, else the system's.
pub fn clock_from_env() -> Arc<dyn Clock> {
    match std::env::var_os(CLOCK_FILE_VAR) {
        Some(path) if !path.is_empty() => Arc::new(FileClock(path.into())),
        _ => Arc::new(SystemClock),
    }
}

/// `500ms`, `30s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(digits);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn window(kind: WindowKind, cron: &str, duration: &str) -> SyncWindow {
        SyncWindow { kind, cron: Cron::utc(cron).unwrap(), duration: parse_window_duration(duration).unwrap() }
    }

    fn timing(windows: Vec<SyncWindow>) -> Timing {
        Timing { schedule: None, windows }
    }

    #[test]
    fn without_windows_runs_may_always_start() {
        let none = Timing::default();
        assert!(!none.is_set());
        let state = none.window_at(t("2026-01-10T12:00:00Z"));
        assert_eq!(state, WindowState { open: true, why: "no sync windows".to_string(), until: None });
        assert_eq!(none.next_start(t("2026-01-10T12:00:00Z"), None), Some(t("2026-01-10T12:00:00Z")));
    }

    #[test]
    fn an_allow_window_is_open_from_its_start_for_its_duration() {
        let w = timing(vec![window(WindowKind::Allow, "0 2 * * *", "1h")]);
        assert!(!w.open_at(t("2026-01-10T01:59:59Z")));
        assert!(w.open_at(t("2026-01-10T02:00:00Z")), "the start is inside");
        assert!(w.open_at(t("2026-01-10T02:59:59Z")));
        assert!(!w.open_at(t("2026-01-10T03:00:00Z")), "the end is outside");
        let closed = w.window_at(t("2026-01-10T12:00:00Z"));
        assert!(!closed.open);
        assert_eq!(closed.why, "outside every allow window");
        assert_eq!(closed.until, Some(t("2026-01-11T02:00:00Z")), "opens the next night");
        let open = w.window_at(t("2026-01-10T02:30:00Z"));
        assert!(open.open && open.why == "inside allow window allow `0 2 * * *` for 1h (UTC)", "{open:?}");
        assert_eq!(open.until, Some(t("2026-01-10T03:00:00Z")));
    }

    #[test]
    fn deny_beats_allow() {
        // Allowed all day from 08:00 (12 h), denied 12:00–13:00 at lunch.
        let w =
            timing(vec![window(WindowKind::Allow, "0 8 * * *", "12h"), window(WindowKind::Deny, "0 12 * * *", "1h")]);
        assert!(w.open_at(t("2026-01-10T11:59:00Z")));
        let lunch = w.window_at(t("2026-01-10T12:30:00Z"));
        assert!(!lunch.open, "inside both: the deny window wins");
        assert!(lunch.why.starts_with("inside deny window deny `0 12 * * *`"), "{lunch:?}");
        assert_eq!(lunch.until, Some(t("2026-01-10T13:00:00Z")), "reopens when the deny window ends");
        assert!(w.open_at(t("2026-01-10T13:00:00Z")));
        assert_eq!(w.window_at(t("2026-01-10T09:00:00Z")).until, Some(t("2026-01-10T12:00:00Z")));
        // A deny window alone: open everywhere else.
        let deny = timing(vec![window(WindowKind::Deny, "0 12 * * *", "1h")]);
        assert!(deny.open_at(t("2026-01-10T03:00:00Z")));
        assert_eq!(deny.window_at(t("2026-01-10T03:00:00Z")).why, "outside every deny window");
    }

    #[test]
    fn a_window_crossing_midnight_is_open_on_both_days() {
        let w = timing(vec![window(WindowKind::Allow, "0 22 * * *", "4h")]);
        assert!(w.open_at(t("2026-01-10T23:30:00Z")));
        assert!(w.open_at(t("2026-01-11T01:59:00Z")), "after midnight, from the previous day's start");
        assert!(!w.open_at(t("2026-01-11T02:00:00Z")));
        assert_eq!(w.window_at(t("2026-01-11T01:00:00Z")).until, Some(t("2026-01-11T02:00:00Z")));
        // On weekdays only: Friday's window runs into Saturday, Saturday's does not exist.
        let weekdays = timing(vec![window(WindowKind::Allow, "0 22 * * MON-FRI", "4h")]);
        assert!(weekdays.open_at(t("2026-01-10T01:00:00Z")), "Saturday 01:00, from Friday 22:00");
        assert!(!weekdays.open_at(t("2026-01-10T23:00:00Z")), "no window starts on Saturday");
        assert_eq!(weekdays.next_time(t("2026-01-10T23:00:00Z"), true), Some(t("2026-01-12T22:00:00Z")));
    }

    #[test]
    fn a_duration_longer_than_the_period_keeps_the_window_open() {
        // Opens every hour for two hours: open from the first start on, never closing.
        let w = timing(vec![window(WindowKind::Allow, "0 * * * *", "2h")]);
        assert!(w.open_at(t("2026-01-10T05:59:59Z")));
        assert_eq!(w.window_at(t("2026-01-10T05:30:00Z")).until, None, "never closes");
        // Denied every 30 minutes for 45: never open.
        let never = timing(vec![window(WindowKind::Deny, "*/30 * * * *", "45m")]);
        assert!(!never.open_at(t("2026-01-10T05:10:00Z")));
        assert_eq!(never.next_time(t("2026-01-10T05:10:00Z"), true), None, "never opens within a year");
        assert_eq!(never.next_start(t("2026-01-10T05:10:00Z"), None), None);
    }

    #[test]
    fn windows_follow_their_time_zone() {
        let madrid = SyncWindow {
            kind: WindowKind::Allow,
            cron: Cron::zoned("0 2 * * *", "Europe/Madrid").unwrap(),
            duration: Duration::from_secs(3600),
        };
        let w = timing(vec![madrid]);
        assert!(w.open_at(t("2026-01-10T01:30:00Z")), "02:30 in Madrid in winter (UTC+1)");
        assert!(!w.open_at(t("2026-01-10T02:30:00Z")));
        assert!(w.open_at(t("2026-07-10T00:30:00Z")), "02:30 in Madrid in summer (UTC+2)");
    }

    #[test]
    fn a_schedule_gives_one_start_per_scheduled_time() {
        let s = Timing { schedule: Some(Cron::utc("0 */2 * * *").unwrap()), windows: Vec::new() };
        let now = t("2026-01-10T10:05:00Z");
        assert_eq!(s.due(now, None), Some(t("2026-01-10T10:00:00Z")));
        assert_eq!(s.due(now, Some(t("2026-01-10T08:00:00Z"))), Some(t("2026-01-10T10:00:00Z")));
        assert_eq!(s.due(now, Some(t("2026-01-10T10:00:00Z"))), None, "used already");
        assert_eq!(s.next_start(now, Some(t("2026-01-10T10:00:00Z"))), Some(t("2026-01-10T12:00:00Z")));
        assert_eq!(s.next_start(now, Some(t("2026-01-10T08:00:00Z"))), Some(now), "due now");
        assert_eq!(s.next_event(now), Some(t("2026-01-10T12:00:00Z")));
        // A scheduled time outside the windows waits for the next opening.
        let both = Timing {
            schedule: Some(Cron::utc("0 */2 * * *").unwrap()),
            windows: vec![window(WindowKind::Allow, "0 2 * * *", "1h")],
        };
        let acted = Some(t("2026-01-10T10:00:00Z"));
        assert_eq!(both.next_start(now, acted), Some(t("2026-01-11T02:00:00Z")));
        assert_eq!(both.next_event(now), Some(t("2026-01-10T12:00:00Z")));
    }

    #[test]
    fn bad_expressions_time_zones_and_durations_are_explained() {
        let four = parse_cron("0 */2 * *").unwrap_err();
        assert_eq!(four.message, "`0 */2 * *` is not a cron expression: it has 4 fields, not 5");
        assert!(four.hint.starts_with("five fields: minute hour day-of-month month day-of-week"), "{four:?}");
        let range = parse_cron("0 25 * * *").unwrap_err();
        assert_eq!(
            range.message,
            "`0 25 * * *` is not a cron expression: the hour field `25`: number out of bounds (allowed: 0-23)"
        );
        let month = parse_cron("0 2 * FOO *").unwrap_err();
        assert!(month.message.contains("the month field `FOO`"), "{month:?}");
        assert!(parse_cron("@daily").is_ok());
        assert!(parse_cron("30 1 * * MON-FRI").is_ok());
        let zone = parse_timezone("Europe/Madird").unwrap_err();
        assert_eq!(zone.message, "`Europe/Madird` is not a time zone");
        assert_eq!(zone.hint, "did you mean `Europe/Madrid`?");
        assert!(parse_timezone("UTC").is_ok());
        assert_eq!(parse_window_duration("0h").unwrap_err().message, "a sync window of zero length never opens");
        assert_eq!(parse_window_duration("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert!(parse_window_duration("9000h").is_err());
    }

    #[test]
    fn the_file_clock_reads_its_time_at_every_look() {
        let dir = tempfile::tempdir().unwrap();
        let clock = FileClock(dir.path().join("now"));
        let before = Timestamp::now();
        assert!(clock.now() >= before, "the system's time while the file is missing");
        std::fs::write(&clock.0, "2026-01-10T02:00:00Z\n").unwrap();
        assert_eq!(clock.now(), t("2026-01-10T02:00:00Z"));
        std::fs::write(&clock.0, "2026-01-10T03:00:00Z").unwrap();
        assert_eq!(clock.now(), t("2026-01-10T03:00:00Z"));
    }
}
