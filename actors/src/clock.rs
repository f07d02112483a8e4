//! Wall-clock helpers.

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Today's date in UTC.
pub fn today_utc() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// Parses a `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<time::Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt).ok()
}
