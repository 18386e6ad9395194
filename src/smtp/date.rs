//! Dates as mail headers write them (RFC 5322 §3.3): our `Received:`
//! header, DSNs, and `tlsrelay queue show`.

/// The date in RFC 5322 §3.3 form, as Received wants it.
pub fn rfc5322_date(time: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::FormatItem<'_>] = time::macros::format_description!(
        "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
    );
    time.format(FORMAT).unwrap_or_default()
}
