//! The defaults of [`super::model`]'s keys, and the serde helpers for
//! values that mean "off" (`0`, `""`). Each default is the one
//! `config/tlsrelay.toml` documents.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::model::DelayWarning;
use super::values::{HumanDuration, ListenAddr, Size, TlsVersion};

pub(super) fn zero_is_off<'de, D: Deserializer<'de>>(d: D) -> Result<DelayWarning, D::Error> {
    let duration = HumanDuration::deserialize(d)?;
    Ok(match duration.0 {
        Duration::ZERO => DelayWarning::Off,
        _ => DelayWarning::After(duration),
    })
}

pub(super) fn empty_is_off<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<ListenAddr>, D::Error> {
    let text = String::deserialize(d)?;
    match text.as_str() {
        "" => Ok(None),
        _ => text.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

pub(super) fn empty_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let path = PathBuf::deserialize(d)?;
    Ok((!path.as_os_str().is_empty()).then_some(path))
}

pub(super) fn minutes(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_secs(60 * n))
}

pub(super) fn default_listen() -> Vec<ListenAddr> {
    vec![ListenAddr(([0, 0, 0, 0], 25).into())]
}
pub(super) fn default_spool_dir() -> PathBuf {
    PathBuf::from("/var/lib/tlsrelay/spool")
}
pub(super) fn default_return_content_limit() -> Size {
    Size(50_000)
}

pub(super) fn default_max_message_size() -> Size {
    Size(35 << 20)
}
pub(super) fn default_max_recipients() -> usize {
    100
}
pub(super) fn default_max_connections() -> usize {
    2000
}
pub(super) fn default_max_connections_per_ip() -> usize {
    50
}
pub(super) fn default_max_hops() -> usize {
    50
}
pub(super) fn default_command_timeout() -> HumanDuration {
    minutes(5)
}
pub(super) fn default_data_timeout() -> HumanDuration {
    minutes(3)
}
pub(super) fn default_min_data_rate() -> Size {
    Size(500)
}
pub(super) fn default_tls_handshake_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
pub(super) fn default_max_errors() -> u32 {
    20
}
pub(super) fn default_shutdown_grace() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
pub(super) fn default_tls_version() -> TlsVersion {
    TlsVersion::Tls12
}
pub(super) fn default_retry_intervals() -> Vec<HumanDuration> {
    [1, 5, 15, 30, 60, 120, 240].map(minutes).to_vec()
}
pub(super) fn default_max_age() -> HumanDuration {
    minutes(5 * 24 * 60)
}
pub(super) fn default_backlog_limit() -> usize {
    10_000
}
pub(super) fn default_in_flow_delay() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
pub(super) fn default_delay_warning() -> HumanDuration {
    minutes(4 * 60)
}
pub(super) fn default_phase_timeout_scale() -> f64 {
    1.0
}
pub(super) fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
pub(super) fn default_mx_port() -> u16 {
    25
}
pub(super) fn default_max_connections_per_destination() -> usize {
    20
}
pub(super) fn default_true() -> bool {
    true
}
pub(super) fn default_broken_tls_memory() -> HumanDuration {
    minutes(24 * 60)
}
pub(super) fn default_https_port() -> u16 {
    443
}
pub(super) fn default_fetch_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(20))
}
pub(super) fn default_report_history() -> HumanDuration {
    HumanDuration(Duration::from_secs(30 * 24 * 3600))
}
