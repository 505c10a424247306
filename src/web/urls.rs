//! The console's URLs, built in one place, and the one percent-encoder for what goes into them.
//!
//! A collection's URL (`…/functions`, `…/functions/{name}/events`) is followed by the key of
//! one of its items, or by `-` and then one of the console's own words: the wizard is
//! `…/functions/-/new`, the event rows `…/events/-/rows`. Function names start with a letter
//! and request ids are UUIDs, so no item can be called `-` and none can shadow a route.

/// Percent-encodes every byte but letters, digits, `-`, `.`, `_`, `~` and `:`, so the result is
/// safe both as a path segment and as a query value (where `&`, `=`, `+` and `#` would change
/// the meaning). Names are restricted to URL-safe characters by the domain rules; they are
/// encoded anyway so a bad one can never break out of its segment. `:` is kept because times
/// in filter links read better with it and it is harmless in an absolute path or a query.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn functions(region: &str, namespace: &str) -> String {
    format!("/scf/{}/{}/functions", encode(region), encode(namespace))
}

pub fn new_function(region: &str, namespace: &str) -> String {
    format!("{}/-/new", functions(region, namespace))
}

pub fn validate(region: &str, namespace: &str) -> String {
    format!("{}/-/validate", functions(region, namespace))
}

pub fn function(region: &str, namespace: &str, name: &str) -> String {
    format!("{}/{}", functions(region, namespace), encode(name))
}

pub fn function_tab(region: &str, namespace: &str, name: &str, tab: &str) -> String {
    format!("{}/{tab}", function(region, namespace, name))
}

pub fn namespaces(region: &str, namespace: &str) -> String {
    format!("/scf/{}/{}/namespaces", encode(region), encode(namespace))
}

pub fn event(region: &str, namespace: &str, name: &str, request_id: &str) -> String {
    format!(
        "{}/events/{}",
        function(region, namespace, name),
        encode(request_id)
    )
}

pub fn api_keys(region: &str, namespace: &str) -> String {
    format!("/scf/{}/{}/api-keys", encode(region), encode(namespace))
}

/// `action` is `enable`, `disable` or `delete`.
pub fn api_key(region: &str, namespace: &str, secret_id: &str, action: &str) -> String {
    format!(
        "{}/{}/{action}",
        api_keys(region, namespace),
        encode(secret_id)
    )
}

pub fn users(region: &str, namespace: &str) -> String {
    format!("/scf/{}/{}/users", encode(region), encode(namespace))
}

/// `action` is `role`, `password` or `delete`.
pub fn user(region: &str, namespace: &str, user: &str, action: &str) -> String {
    format!("{}/{}/{action}", users(region, namespace), encode(user))
}

pub fn account(region: &str, namespace: &str) -> String {
    format!("/scf/{}/{}/account", encode(region), encode(namespace))
}

pub fn audit(region: &str, namespace: &str) -> String {
    format!("/scf/{}/{}/audit", encode(region), encode(namespace))
}

pub fn system(region: &str, namespace: &str) -> String {
    format!("/scf/{}/{}/system", encode(region), encode(namespace))
}

pub fn namespace_settings(region: &str, namespace: &str, target: &str) -> String {
    format!(
        "{}/{}/settings",
        namespaces(region, namespace),
        encode(target)
    )
}

pub fn delete_namespace(region: &str, namespace: &str, target: &str) -> String {
    format!(
        "{}/{}/delete",
        namespaces(region, namespace),
        encode(target)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_a_value_inside_its_segment_or_parameter() {
        assert_eq!(encode("my-func_1.0~"), "my-func_1.0~");
        assert_eq!(encode("2020-12-01T08:35"), "2020-12-01T08:35");
        assert_eq!(
            encode("a/b?c&d=e+f#g h%"),
            "a%2Fb%3Fc%26d%3De%2Bf%23g%20h%25"
        );
        assert_eq!(encode("é"), "%C3%A9");
    }
}
