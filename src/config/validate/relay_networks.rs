//! The networks allowed to relay by address: together they must not cover
//! every IPv4 or IPv6 address (an error), and a wide public one is worth a
//! warning.

use super::Checker;
use crate::config::error::ConfigError;
use crate::config::model::Config;

/// The networks that may relay by address alone: `remote_ips` of the
/// `allow_relay` connectors that a client certificate does not key, with
/// the config key of each.
fn relay_networks(config: &Config) -> impl Iterator<Item = (String, ipnet::IpNet)> + '_ {
    config
        .inbound
        .iter()
        .enumerate()
        .filter(|(_, c)| c.allow_relay && c.tls_client_cert_names.is_empty())
        .flat_map(|(i, c)| {
            c.remote_ips
                .iter()
                .enumerate()
                .map(move |(j, net)| (format!("inbound[{i}].remote_ips[{j}]"), net.0))
        })
}

/// No set of relay networks may add up to every IPv4 or every IPv6
/// address, however it is split (`0.0.0.0/1` + `128.0.0.0/1` is
/// `0.0.0.0/0`): that is an open relay.
pub(super) fn open_relay(c: &mut Checker) {
    let config = c.config;
    let nets: Vec<(String, ipnet::IpNet)> = relay_networks(config).collect();
    for (family, everything) in [("IPv4", "0.0.0.0/0"), ("IPv6", "::/0")] {
        let everything: ipnet::IpNet = everything.parse().unwrap_or_default();
        let same_family: Vec<&(String, ipnet::IpNet)> = nets
            .iter()
            .filter(|(_, net)| net.addr().is_ipv4() == everything.addr().is_ipv4())
            .collect();
        let ranges: Vec<ipnet::IpNet> = same_family.iter().map(|(_, net)| *net).collect();
        if !ipnet::IpNet::aggregate(&ranges).contains(&everything) {
            continue;
        }
        let Some((first, _)) = same_family.first() else {
            continue;
        };
        let message = match &ranges[..] {
            [one] => format!(
                "allow_relay for {one} lets anyone relay (an open relay); list your own networks"
            ),
            _ => format!(
                "the allow_relay networks {} together cover every {family} address, so anyone could relay (an open relay); list your own networks",
                ranges.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        c.fail(first, message);
    }
}

/// Things worth a warning that do not stop the relay: relay networks that
/// are public and wider than a /16 (IPv4) or a /32 (IPv6), which is more
/// than one organisation's mail servers usually need.
pub(in crate::config) fn warnings(config: &Config) -> Vec<ConfigError> {
    relay_networks(config)
        .filter(|(_, net)| is_wide_public(net))
        .map(|(key, net)| {
            config.error(&key, format!(
                "warning: allow_relay for {net} lets every host of a wide public network relay; list only your own mail servers if you can"
            ))
        })
        .collect()
}

fn is_wide_public(net: &ipnet::IpNet) -> bool {
    let private = |n: &ipnet::IpNet| {
        [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "fc00::/7",
            "fe80::/10",
            "::1/128",
        ]
        .iter()
        .filter_map(|p| p.parse::<ipnet::IpNet>().ok())
        .any(|p| p.contains(n))
    };
    let widest = if net.addr().is_ipv4() { 16 } else { 32 };
    net.prefix_len() < widest && !private(net)
}
