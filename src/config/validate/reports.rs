//! `[tls_rpt]`: a report must say who sends it (RFC 8460 §4.4
//! `organization-name` is required), so sending needs the name.

use super::Checker;
use crate::config::error::Target;

pub(super) fn tls_rpt(c: &mut Checker) {
    let rpt = &c.config.tls_rpt;
    if rpt.enabled && rpt.organization_name.trim().is_empty() {
        // At the empty name when the file has one, else at `enabled`.
        let located = &c.config.located;
        let name = located.span_of("tls_rpt.organization_name", Target::Value);
        let key = match name.is_some() && name != located.span_of("tls_rpt", Target::Value) {
            true => "tls_rpt.organization_name",
            false => "tls_rpt.enabled",
        };
        c.fail(
            key,
            "TLS-RPT reports need the sender's organisation: set [tls_rpt] organization_name (for example \"Example Org\"), or enabled = false",
        );
    }
}
