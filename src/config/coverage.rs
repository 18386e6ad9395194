//! Which outbound connector covers a domain pattern: the rule by which
//! delivery picks a connector (`outbound::route`) and by which
//! `check-config` finds mail loops for accepted domains (`validate`).

use super::values::DomainPattern;
use super::OutboundConnector;

/// The connector that carries mail for every domain `pattern` matches:
/// the most specific one whose pattern covers it (`check-config` asks
/// this of accepted domains to find mail loops).
pub fn connector_covering<'a>(
    connectors: &'a [OutboundConnector],
    pattern: &DomainPattern,
) -> Option<&'a OutboundConnector> {
    most_specific(connectors, |c| c, pattern)
}

/// Of `items`, each with its connector's settings, the one whose
/// `recipient_domains` cover `pattern` most specifically (delivery keeps
/// its connectors with their trust stores, and asks this of them).
pub fn most_specific<'a, C>(
    items: &'a [C],
    settings: impl Fn(&C) -> &OutboundConnector,
    pattern: &DomainPattern,
) -> Option<&'a C> {
    items
        .iter()
        .flat_map(|c| settings(c).recipient_domains.iter().map(move |p| (p, c)))
        .filter(|(p, _)| p.covers(pattern))
        .max_by_key(|(p, _)| p.specificity())
        .map(|(_, c)| c)
}
