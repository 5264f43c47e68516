//! Where a webhook may be delivered: never into the network the product runs in. A
//! receiver URL that names, or resolves to, a loopback, private, link-local, CGNAT,
//! unique-local, multicast, reserved or IPv4-mapped address would let anyone who can
//! subscribe make the worker call internal services (the cloud metadata endpoint at
//! 169.254.169.254, a database's HTTP port) and read the answer in the delivery log.
//!
//! The check runs twice: on the URL when a subscription is written (literal addresses,
//! in every spelling the URL parser accepts: `2130706433`, `127.1`, `[::ffff:7f00:1]`),
//! and on every address a name resolves to at delivery time, where the connection is
//! then made to the address checked (a name that resolved to a public address when
//! checked cannot switch to a private one for the request: DNS rebinding).
//!
//! Loopback is allowed only by an explicit setting (tests, a receiver on the same host).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which receiver addresses deliveries may reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Allow 127.0.0.0/8, `::1` and `localhost` (`CMO_WEBHOOK_ALLOW_LOOPBACK`).
    pub allow_loopback: bool,
}

impl AddressPolicy {
    /// Loopback receivers allowed (tests and local development).
    pub const LOOPBACK_ALLOWED: AddressPolicy = AddressPolicy {
        allow_loopback: true,
    };

    /// Why no delivery may go to `ip`, or `None` when it may.
    pub fn refusal(self, ip: IpAddr) -> Option<&'static str> {
        match ip {
            IpAddr::V4(v4) => self.refusal_v4(v4),
            IpAddr::V6(v6) => self.refusal_v6(v6),
        }
    }

    fn refusal_v4(self, ip: Ipv4Addr) -> Option<&'static str> {
        let [a, b, c, _] = ip.octets();
        if ip.is_loopback() {
            return (!self.allow_loopback).then_some("a loopback address");
        }
        if a == 0 {
            return Some("an unspecified address (0.0.0.0/8)");
        }
        if ip.is_private() {
            return Some("a private address (10/8, 172.16/12, 192.168/16)");
        }
        if a == 100 && (b & 0xc0) == 64 {
            return Some("a carrier-grade NAT address (100.64/10)");
        }
        if ip.is_link_local() {
            return Some("a link-local address (169.254/16, cloud metadata)");
        }
        if a == 192 && b == 0 && c == 0 {
            return Some("an IETF protocol address (192.0.0/24)");
        }
        if a == 198 && (b & 0xfe) == 18 {
            return Some("a benchmarking address (198.18/15)");
        }
        if ip.is_documentation() {
            return Some("a documentation address");
        }
        if ip.is_multicast() || a >= 240 {
            return Some("a multicast, reserved or broadcast address");
        }
        None
    }

    fn refusal_v6(self, ip: Ipv6Addr) -> Option<&'static str> {
        let first = ip.segments()[0];
        if ip.is_loopback() {
            return (!self.allow_loopback).then_some("a loopback address");
        }
        if ip.is_unspecified() {
            return Some("an unspecified address (::)");
        }
        if ip.to_ipv4_mapped().is_some() {
            return Some("an IPv4-mapped address (::ffff:0:0/96)");
        }
        if ip.segments()[..6] == [0, 0, 0, 0, 0, 0] {
            return Some("an IPv4-compatible address (::/96)");
        }
        if first == 0x64 && ip.segments()[1] == 0xff9b {
            return Some("a NAT64 address (64:ff9b::/96)");
        }
        if (first & 0xfe00) == 0xfc00 {
            return Some("a unique-local address (fc00::/7)");
        }
        if (first & 0xffc0) == 0xfe80 {
            return Some("a link-local address (fe80::/10)");
        }
        if (first & 0xff00) == 0xff00 {
            return Some("a multicast address (ff00::/8)");
        }
        if first == 0x2001 && ip.segments()[1] == 0x0db8 {
            return Some("a documentation address (2001:db8::/32)");
        }
        None
    }

    /// The URL's host when it is an address (or `localhost`), checked; names are checked
    /// when they are resolved, at delivery.
    pub fn check_host(self, host: &url::Host<&str>) -> Result<(), String> {
        let Some(ip) = literal_address(host) else {
            return Ok(());
        };
        match self.refusal(ip) {
            Some(why) => Err(format!(
                "the receiver is {why}: webhooks go only to public addresses"
            )),
            None => Ok(()),
        }
    }
}

/// The address a URL host names without resolving: an IP literal, or loopback for
/// `localhost` (and its subdomains, which resolvers send to loopback).
fn literal_address(host: &url::Host<&str>) -> Option<IpAddr> {
    match host {
        url::Host::Ipv4(v4) => Some((*v4).into()),
        url::Host::Ipv6(v6) => Some((*v6).into()),
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            (d == "localhost" || d.ends_with(".localhost")).then_some(Ipv4Addr::LOCALHOST.into())
        }
    }
}

/// Whether a URL host is a loopback address or `localhost`.
pub fn is_loopback(host: &url::Host<&str>) -> bool {
    literal_address(host).is_some_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(raw: &str) -> Result<(), String> {
        let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
        AddressPolicy::default().check_host(&url.host().ok_or("no host")?)
    }

    #[test]
    fn every_spelling_of_an_inner_address_is_refused() {
        for raw in [
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.5/",
            "https://172.16.4.1/",
            "https://172.31.255.255/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://127.0.0.1/",
            "http://2130706433/",
            "http://127.1/",
            "http://0x7f.1/",
            "https://localhost/",
            "https://LOCALHOST./",
            "https://api.localhost/",
            "https://[::1]/",
            "https://[::]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:a9fe:a9fe]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://224.0.0.1/",
            "https://255.255.255.255/",
        ] {
            assert!(host_of(raw).is_err(), "{raw} was accepted");
        }
    }

    #[test]
    fn public_addresses_and_names_pass_and_loopback_only_when_allowed() {
        for raw in [
            "https://erp.example.com/hooks",
            "https://93.184.216.34/",
            "https://[2606:4700::1111]/",
            "https://172.32.0.1/",
            "https://100.128.0.1/",
        ] {
            assert!(host_of(raw).is_ok(), "{raw} was refused");
        }
        let allowed = AddressPolicy::LOOPBACK_ALLOWED;
        assert_eq!(allowed.refusal(Ipv4Addr::LOCALHOST.into()), None);
        assert_eq!(allowed.refusal(Ipv6Addr::LOCALHOST.into()), None);
        assert!(allowed.refusal("10.1.2.3".parse().unwrap()).is_some());
        assert!(
            allowed
                .refusal("169.254.169.254".parse().unwrap())
                .is_some()
        );
    }
}
