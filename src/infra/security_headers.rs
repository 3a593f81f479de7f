//! The security headers of the service's HTTP responses, defined once.
//!
//! Two front doors answer browsers: Envoy (REST, `envoy/envoy.yaml`, which adds
//! [`COMMON`] and [`API_CSP`] to every response it sends) and the console's own
//! HTTP server ([`crate::infra::console`], which adds [`COMMON`] and [`console_csp`]).
//! Envoy's YAML cannot import a Rust constant, so a unit test below reads the
//! YAML (and the Kubernetes copy of it) and fails when the two drift apart.
//!
//! Only the Content-Security-Policy differs: the API serves data, never a page,
//! so it allows nothing at all; the console is a page that loads its own
//! scripts and styles and calls the API's origin over grpc-web.

/// Headers every response carries, whoever serves it. X-Frame-Options is the
/// legacy twin of CSP `frame-ancestors 'none'` (no one may frame a response).
/// HSTS is ignored by browsers on plain http:// and takes effect once a TLS
/// front door serves the same responses.
pub const COMMON: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("referrer-policy", "no-referrer"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
];

/// The API's policy (Envoy): its answers are data, so nothing may load,
/// run or frame them.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The console's policy: its own files only (vite emits no inline script or
/// style; the bundle sets styles through the CSSOM, which CSP allows), grpc-web
/// calls to its own origin (`/config.json`) and to `api_origin` only, no
/// framing, no `<base>`, no plugins, and no native form submission (the
/// sign-in form is handled by script; without it a submit would put the
/// password in a URL).
///
/// `api_origin` must be a validated origin (`scheme://host[:port]`, see
/// [`crate::config::parse_origin`]): it is pasted into a header.
pub fn console_csp(api_origin: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self' {api_origin}; object-src 'none'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Envoy's `response_headers_to_add` entries, as `(lowercase name, value)`.
    fn envoy_headers(yaml: &str) -> Vec<(String, String)> {
        yaml.lines()
            .filter_map(|line| {
                let rest = line.trim().strip_prefix("- header: { key: ")?;
                let (name, value) = rest.split_once(", value: ")?;
                let value = value.trim_end_matches('}').trim();
                let value = value.trim_matches('"');
                Some((name.to_ascii_lowercase(), value.to_string()))
            })
            .collect()
    }

    #[test]
    fn envoy_sends_the_same_headers() {
        for (file, yaml) in [
            ("envoy/envoy.yaml", include_str!("../../envoy/envoy.yaml")),
            (
                "deploy/k8s/envoy-configmap.yaml",
                include_str!("../../deploy/k8s/envoy-configmap.yaml"),
            ),
        ] {
            let found = envoy_headers(yaml);
            let mut wanted: Vec<(String, String)> = COMMON
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            wanted.push(("content-security-policy".into(), API_CSP.into()));
            for header in &wanted {
                assert!(found.contains(header), "{file} lacks {header:?}: {found:?}");
            }
        }
    }

    #[test]
    fn the_console_policy_names_only_itself_and_the_api() {
        let csp = console_csp("https://api.example.com");
        assert!(csp.contains("connect-src 'self' https://api.example.com;"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe"));
        let directives: Vec<&str> = csp.split("; ").collect();
        assert_eq!(directives.len(), 9, "{csp}");
    }
}
