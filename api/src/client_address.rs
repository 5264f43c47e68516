//! The address a request comes from, as far as the api can trust it. Behind a reverse
//! proxy or load balancer every connection comes from the proxy, so sign-in throttling
//! per client address would throttle everyone at once; the proxy names the client in
//! `X-Forwarded-For`. That header is anyone's to write, so it is believed only from the
//! proxies the operator lists (`CMO_TRUSTED_PROXIES`), and only up to the first hop that
//! is not one of them.

use std::net::IpAddr;
use std::str::FromStr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// Proxies whose `X-Forwarded-For` the api believes: addresses or CIDR ranges. Empty
/// (the default): the connection's own address is the client's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list: `10.0.0.0/8, 192.0.2.10, ::1`.
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<IpNet>()
                    .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("{part:?} is neither an IP address nor a CIDR range (10.0.0.0/8)")
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the connection's (`peer`) unless that is a trusted proxy;
    /// then `X-Forwarded-For` (`forwarded`, its headers in order) read from the right,
    /// skipping trusted proxies: the first hop that is not one is the client. A hop that
    /// does not parse ends the walk at the last trusted one (nothing before it can be
    /// believed).
    pub fn client_ip<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded: impl IntoIterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        let peer = peer.map(canonical)?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = forwarded
            .into_iter()
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>().map(canonical) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        Some(client)
    }

    /// [`Self::client_ip`] of a request, as text (what the throttling and the audit
    /// trail record).
    pub fn client_addr(&self, req: &HttpRequest) -> String {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok());
        self.client_ip(req.peer_addr().map(|a| a.ip()), forwarded)
            .map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
    }
}

/// An IPv4 address written as IPv6 (`::ffff:192.0.2.1`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("198.51.100.4"), ["203.0.113.7"]),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_first_untrusted_hop_from_the_right_is_the_client() {
        let proxies: TrustedProxies = "10.0.0.0/8, 192.0.2.10".parse().unwrap();
        // A client's own header is kept in front: only the hops the proxies add count.
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), ["6.6.6.6, 203.0.113.7, 192.0.2.10"]),
            ip("203.0.113.7")
        );
        // Several headers read as one list, in order.
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), ["6.6.6.6", "203.0.113.7"]),
            ip("203.0.113.7")
        );
        // An untrusted peer's header is not believed.
        assert_eq!(
            proxies.client_ip(ip("198.51.100.4"), ["203.0.113.7"]),
            ip("198.51.100.4")
        );
        // No header: the proxy itself.
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), std::iter::empty()),
            ip("10.1.2.3")
        );
        // Garbage ends the walk at the last trusted hop.
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), ["203.0.113.7, not-an-ip, 10.9.9.9"]),
            ip("10.9.9.9")
        );
        // Only trusted hops: the leftmost.
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), ["10.0.0.7"]),
            ip("10.0.0.7")
        );
    }

    #[test]
    fn a_mapped_ipv4_address_is_the_ipv4_address() {
        let proxies: TrustedProxies = "127.0.0.1".parse().unwrap();
        assert_eq!(
            proxies.client_ip(ip("::ffff:127.0.0.1"), ["::ffff:203.0.113.7"]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn a_bad_entry_is_refused_at_start() {
        let err = "10.0.0.0/8, proxy.internal"
            .parse::<TrustedProxies>()
            .unwrap_err();
        assert!(err.contains("proxy.internal"), "{err}");
        assert_eq!(
            " ".parse::<TrustedProxies>().unwrap(),
            TrustedProxies::default()
        );
    }
}
