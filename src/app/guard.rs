//! Who may talk to the server at all: the host names it answers to, the sites whose pages may
//! change something through a visitor's browser, and the headers that tell browsers what a
//! page may load and who may frame it.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// What a page may load: only the console's own scripts, styles and requests, no inline code,
/// and no framing, so an injected fragment cannot run and a page cannot be clickjacked.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'";

/// The headers every answer carries, whatever answered it.
pub const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// Host names (each with an optional port) that requests may name in `Host`.
///
/// A page on an attacker's domain whose name is made to resolve to this machine (DNS
/// rebinding) is same-origin with itself, so the browser lets it read and post freely; what
/// gives it away is the `Host` it sends, which is the attacker's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    entries: Vec<HostEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostEntry {
    /// `*`: every host, for a server that sits behind a proxy doing this check itself.
    Any,
    /// A name in lower case (an IPv6 address in brackets); any port when `port` is `None`.
    Name { name: String, port: Option<u16> },
}

const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl Default for AllowedHosts {
    /// This machine's own names, on any port.
    fn default() -> Self {
        AllowedHosts {
            entries: LOCAL_NAMES
                .iter()
                .map(|name| HostEntry::Name {
                    name: (*name).to_string(),
                    port: None,
                })
                .collect(),
        }
    }
}

impl AllowedHosts {
    /// The default for a server listening on `listen`: this machine's own names, and the
    /// listen address when it is a particular one (`0.0.0.0` is no name a client uses).
    pub fn for_listen(listen: SocketAddr) -> Self {
        let mut hosts = AllowedHosts::default();
        if !listen.ip().is_unspecified() {
            let name = match listen.ip() {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            };
            let entry = HostEntry::Name { name, port: None };
            if !hosts.entries.contains(&entry) {
                hosts.entries.push(entry);
            }
        }
        hosts
    }

    /// True when a request naming `host` (a `Host` header's value) may be served.
    pub fn allows(&self, host: &str) -> bool {
        let Ok((name, port)) = split_host(without_scheme(host)) else {
            return false;
        };
        self.entries.iter().any(|entry| match entry {
            HostEntry::Any => true,
            HostEntry::Name {
                name: allowed,
                port: allowed_port,
            } => *allowed == name && allowed_port.is_none_or(|p| Some(p) == port),
        })
    }
}

impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .entries
            .iter()
            .map(|entry| match entry {
                HostEntry::Any => "*".to_string(),
                HostEntry::Name { name, port: None } => name.clone(),
                HostEntry::Name {
                    name,
                    port: Some(port),
                } => format!("{name}:{port}"),
            })
            .collect();
        f.write_str(&names.join(","))
    }
}

impl FromStr for AllowedHosts {
    type Err = String;

    /// A comma-separated list such as `console.example.com,localhost:9000,[::1]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut entries = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let entry = if item == "*" {
                HostEntry::Any
            } else {
                if item.contains("://") || item.contains('/') {
                    return Err(format!(
                        "{item:?} is not a host name: write the name alone, with an optional port (console.example.com or console.example.com:9000)"
                    ));
                }
                let (name, port) = split_host(item)
                    .map_err(|why| format!("{item:?} is not a host name: {why}"))?;
                HostEntry::Name { name, port }
            };
            if !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        if entries.is_empty() {
            return Err("name at least one host, or * for any".into());
        }
        Ok(AllowedHosts { entries })
    }
}

/// tccli given `--endpoint http://name:port` sends that whole URL as its Host (and signs it
/// so); the name in it is what counts.
fn without_scheme(host: &str) -> &str {
    host.strip_prefix("http://")
        .or_else(|| host.strip_prefix("https://"))
        .unwrap_or(host)
}

/// `host[:port]` as a lower-case name and its port. An IPv6 address is written in brackets;
/// a bare one (`::1`) is taken whole, as it cannot carry a port.
fn split_host(s: &str) -> Result<(String, Option<u16>), &'static str> {
    let (name, port) = if let Some(rest) = s.strip_prefix('[') {
        let (address, after) = rest.split_once(']').ok_or("a [ without its ]")?;
        address
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| "not an IPv6 address in brackets")?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("text after the ]")?),
        };
        (format!("[{}]", address.to_ascii_lowercase()), port)
    } else if s.matches(':').count() > 1 {
        let address: std::net::Ipv6Addr = s.parse().map_err(|_| "not an IPv6 address")?;
        (format!("[{address}]"), None)
    } else {
        match s.split_once(':') {
            Some((name, port)) => (name.to_ascii_lowercase(), Some(port)),
            None => (s.to_ascii_lowercase(), None),
        }
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if name.is_empty() || !(name.starts_with('[') || name.chars().all(plain)) {
        return Err("only letters, digits, - . and _ may form a host name");
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().map_err(|_| "the port must be a number")?),
    };
    Ok((name, port))
}

/// The host a request names: the authority of an absolute URI, which takes precedence over
/// `Host`, else every `Host` header it carries. None for a request that names none, which no
/// browser sends.
fn named_hosts(req: &Request<Body>) -> Vec<Result<&str, ()>> {
    if let Some(authority) = req.uri().authority() {
        return vec![Ok(authority.as_str())];
    }
    req.headers()
        .get_all(header::HOST)
        .iter()
        .map(|v| v.to_str().map_err(|_| ()))
        .collect()
}

/// Passes a request naming an allowed host (or none); answers any other with 421 and how to
/// allow it. The SCF API is held to it too: TC3 signs the host, but a rebinding page must not
/// even reach the signature check.
pub fn check_host(hosts: &AllowedHosts, req: Request<Body>) -> Result<Request<Body>, Refusal> {
    // A health check from a load balancer names whatever address it probes, and learns
    // nothing but "ok".
    if req.uri().path() == "/healthz" {
        return Ok(req);
    }
    let refused = named_hosts(&req)
        .into_iter()
        .find(|host| !host.is_ok_and(|h| hosts.allows(h)));
    let Some(host) = refused else {
        return Ok(req);
    };
    let host = host.map_or("(not readable)", without_scheme).to_string();
    tracing::warn!(%host, allowed = %hosts, "refused a request for a host name not allowed");
    Err(Refusal::Host {
        host,
        allowed: hosts.to_string(),
    })
}

/// Refuses a console request that would change something when it came from another site's
/// page: the browser says so in `Sec-Fetch-Site`, and in an `Origin` that is not this
/// server's. A request with neither (curl, scripts, older browsers) passes; the SCF API is
/// signed and takes no cookies, so nothing a browser holds can be abused through it.
pub fn refuse_cross_site(req: Request<Body>) -> Result<Request<Body>, Refusal> {
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !changes_state || crate::scf::is_api_call(req.headers()) {
        return Ok(req);
    }
    let headers = req.headers();
    let same_origin = origin_matches(headers, req.uri());
    let site = headers
        .get("sec-fetch-site")
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let cross = match site {
        b"cross-site" => true,
        // Another port or subdomain of this site: its own origin, as far as we care.
        b"same-site" => same_origin != Some(true),
        _ => same_origin == Some(false),
    };
    if !cross {
        return Ok(req);
    }
    tracing::warn!(
        origin = ?headers.get(header::ORIGIN),
        sec_fetch_site = ?headers.get("sec-fetch-site"),
        "refused a change requested from another site"
    );
    Err(Refusal::CrossSite)
}

/// Why a request was not let in.
#[derive(Debug)]
pub enum Refusal {
    /// It named a host the server does not answer to.
    Host { host: String, allowed: String },
    /// It would change something, and another site's page sent it.
    CrossSite,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            // Plain text: whoever reads it (a person, an SDK) is not on a page of the console.
            Refusal::Host { host, allowed } => (
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "This server does not answer to the host name {host:?}: it answers only to {allowed}.\n\
                     If this is a name you use to reach it, add it to --allowed-hosts (or \
                     SCF_ALLOWED_HOSTS) with the others, e.g. --allowed-hosts {allowed},{host}\n"
                ),
            )
                .into_response(),
            Refusal::CrossSite => crate::error::error_page(
                StatusCode::FORBIDDEN,
                "Refused: another site sent this",
                "This request came from another site, not from a page of this console, so nothing was changed. If you meant to do this, open the console and do it from there.",
            ),
        }
    }
}

/// Whether the request's `Origin` is this server's: None without one. The scheme is not
/// compared, as behind a proxy that ends TLS the page's is https and ours http; the host and
/// port are, as the browser writes both the same way in `Origin` and `Host`.
fn origin_matches(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<bool> {
    let origin = headers.get(header::ORIGIN)?;
    let Some(authority) = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    }) else {
        // `null` (a sandboxed frame, a file, a redirect from elsewhere) and anything odd.
        return Some(false);
    };
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()));
    Some(host.is_some_and(|h| h.eq_ignore_ascii_case(authority)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(s: &str) -> AllowedHosts {
        s.parse().unwrap()
    }

    #[test]
    fn a_name_without_a_port_allows_any_port() {
        let h = hosts("console.example.com");
        assert!(h.allows("console.example.com"));
        assert!(h.allows("console.example.com:9000"));
        assert!(h.allows("Console.Example.COM:443"));
        assert!(!h.allows("evil.example"));
        assert!(!h.allows("console.example.com.evil.example"));
        assert!(!h.allows("example.com"));
    }

    #[test]
    fn a_name_with_a_port_allows_that_port_only() {
        let h = hosts(" localhost:9000 , 10.0.0.5:8080");
        assert!(h.allows("localhost:9000"));
        assert!(!h.allows("localhost:9001"));
        assert!(!h.allows("localhost"));
        assert!(h.allows("10.0.0.5:8080"));
        assert_eq!(h.to_string(), "localhost:9000,10.0.0.5:8080");
    }

    #[test]
    fn ipv6_addresses_are_written_in_brackets() {
        let h = hosts("[::1],fe80::1");
        assert!(h.allows("[::1]:9000"));
        assert!(h.allows("[::1]"));
        assert!(h.allows("[FE80::1]"));
        assert!(!h.allows("[::2]"));
        assert_eq!(h.to_string(), "[::1],[fe80::1]");
    }

    #[test]
    fn a_host_written_as_a_url_counts_by_its_name() {
        let h = hosts("localhost");
        assert!(h.allows("http://localhost:9000"));
        assert!(!h.allows("http://evil.example:9000"));
        assert!(!h.allows("http://localhost:9000/path"));
    }

    #[test]
    fn a_star_allows_every_host() {
        assert!(hosts("*").allows("anything.example:1234"));
    }

    #[test]
    fn what_is_not_a_host_name_is_refused_with_the_reason() {
        for (bad, why) in [
            ("http://console.example.com", "write the name alone"),
            ("console.example.com/path", "write the name alone"),
            ("localhost:http", "the port must be a number"),
            ("localhost:99999", "the port must be a number"),
            ("[::1", "without its ]"),
            ("[::1]x", "after the ]"),
            ("a b", "only letters"),
            (" , ", "at least one host"),
        ] {
            let err = bad.parse::<AllowedHosts>().unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn by_default_this_machine_and_the_listen_address() {
        let local = AllowedHosts::for_listen("127.0.0.1:9000".parse().unwrap());
        assert_eq!(local.to_string(), "localhost,127.0.0.1,[::1]");
        assert!(local.allows("127.0.0.1:9000"));
        assert!(local.allows("localhost:9000"));
        assert!(!local.allows("192.168.1.5:9000"));

        let lan = AllowedHosts::for_listen("192.168.1.5:9000".parse().unwrap());
        assert!(lan.allows("192.168.1.5:9000"));

        let any = AllowedHosts::for_listen("0.0.0.0:9000".parse().unwrap());
        assert_eq!(any, AllowedHosts::default());
        let v6 = AllowedHosts::for_listen("[fd00::5]:9000".parse().unwrap());
        assert!(v6.allows("[fd00::5]:9000"));
    }

    fn post(headers: &[(&str, &str)]) -> Request<Body> {
        let mut req = Request::post("/scf/r/n/functions/-/new");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(Body::empty()).unwrap()
    }

    #[test]
    fn a_change_from_another_site_is_refused() {
        let host = ("host", "127.0.0.1:9000");
        for refused in [
            vec![host, ("sec-fetch-site", "cross-site")],
            vec![host, ("origin", "http://evil.example")],
            vec![host, ("origin", "null")],
            vec![host, ("origin", "http://127.0.0.1:9001")],
            vec![
                host,
                ("origin", "http://localhost:8000"),
                ("sec-fetch-site", "same-site"),
            ],
            vec![("origin", "http://127.0.0.1:9000")],
        ] {
            assert!(refuse_cross_site(post(&refused)).is_err(), "{refused:?}");
        }
        for passed in [
            vec![],
            vec![host],
            vec![host, ("sec-fetch-site", "same-origin")],
            vec![host, ("origin", "http://127.0.0.1:9000")],
            vec![host, ("origin", "https://127.0.0.1:9000")],
            vec![host, ("sec-fetch-site", "none")],
            vec![
                host,
                ("origin", "http://evil.example"),
                ("x-tc-action", "CreateFunction"),
            ],
        ] {
            assert!(refuse_cross_site(post(&passed)).is_ok(), "{passed:?}");
        }
        let get = Request::get("/")
            .header("sec-fetch-site", "cross-site")
            .body(Body::empty())
            .unwrap();
        assert!(refuse_cross_site(get).is_ok(), "following a link is fine");
    }
}
