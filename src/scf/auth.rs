//! Who is calling: the TC3 signature of every API call is checked against the caller's key.

use super::error::{ApiError, ApiResult};
use super::tc3::{self, MAX_SKEW_SECS, SignInput};
use crate::domain::user::Role;
use crate::state::AppState;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};

fn failure(code: &str, message: &str) -> ApiError {
    ApiError::new(code, message)
}

/// A caller whose headers passed: a well-formed authorization, a fresh timestamp and a known,
/// enabled key. Only the signature, which covers the body, is left to check.
pub struct Caller<'h> {
    auth: tc3::Authorization<'h>,
    timestamp: i64,
    secret_key: String,
    /// The signature leaves the body out (`X-TC-Content-SHA256: UNSIGNED-PAYLOAD`).
    unsigned_payload: bool,
    /// What calls signed with the key may do: its owner's role, or read-only.
    pub role: Role,
}

impl Caller<'_> {
    pub fn secret_id(&self) -> &str {
        self.auth.secret_id
    }
}

/// Everything the headers alone can refuse, refused before a byte of the body is read, so an
/// unsigned, stale or unknown caller cannot make the server buffer a large body.
pub async fn identify<'h>(state: &AppState, headers: &'h HeaderMap) -> ApiResult<Caller<'h>> {
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            failure(
                "AuthFailure.InvalidAuthorization",
                "The Authorization header is missing; sign requests with TC3-HMAC-SHA256.",
            )
        })?;
    let auth = tc3::parse_authorization(header).ok_or_else(|| {
        failure(
            "AuthFailure.InvalidAuthorization",
            "The Authorization header is not a valid TC3-HMAC-SHA256 authorization.",
        )
    })?;
    if !(auth.signed_headers.contains(&"content-type") && auth.signed_headers.contains(&"host")) {
        return Err(failure(
            "AuthFailure.InvalidAuthorization",
            "SignedHeaders must include content-type and host.",
        ));
    }
    // The official SDKs name the service `scf`, except the Node.js SDK, which takes the first
    // label of a custom endpoint (`127` for 127.0.0.1:9000): any label is signed with.
    let label_ok = !auth.service.is_empty()
        && auth.service.len() <= 63
        && auth
            .service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !label_ok {
        return Err(failure(
            "AuthFailure.InvalidAuthorization",
            "The credential scope must name a service (letters, digits and -), such as scf.",
        ));
    }
    let timestamp: i64 = headers
        .get("x-tc-timestamp")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            failure(
                "AuthFailure.InvalidAuthorization",
                "The X-TC-Timestamp header is missing or not a Unix time in seconds.",
            )
        })?;
    let unsigned_payload = headers
        .get("x-tc-content-sha256")
        .is_some_and(|v| v == "UNSIGNED-PAYLOAD");
    if unsigned_payload && !state.allow_unsigned_payload {
        return Err(failure(
            "AuthFailure.SignatureFailure",
            "Unsigned payloads (X-TC-Content-SHA256: UNSIGNED-PAYLOAD) are disabled on this \
             server: sign the request body, as the SDKs do by default, or start the server \
             with --allow-unsigned-payload (SCF_ALLOW_UNSIGNED_PAYLOAD=true).",
        ));
    }
    let now = state.clock.now_millis() / 1000;
    if (now - timestamp).abs() > MAX_SKEW_SECS {
        return Err(failure(
            "AuthFailure.SignatureExpire",
            "The request's timestamp is more than 5 minutes from the server's time; check the client's clock.",
        ));
    }
    let key = state
        .keys
        .lookup(state.store.as_ref(), auth.secret_id)
        .await
        .map_err(ApiError::from)?
        .filter(|k| k.enabled)
        .ok_or_else(|| {
            failure(
                "AuthFailure.SecretIdNotFound",
                "The SecretId does not exist or is disabled.",
            )
        })?;
    let role = key.role().ok_or_else(|| {
        failure(
            "UnauthorizedOperation",
            "This key belongs to no user; an admin can delete it and create a new one.",
        )
    })?;
    Ok(Caller {
        auth,
        timestamp,
        secret_key: key.secret_key,
        unsigned_payload,
        role,
    })
}

/// The signed headers with the host's port left out, if it has one: the Node.js SDK signs the
/// host without its port while sending the port in Host.
fn portless<'a>(values: &[(&'a str, String)]) -> Option<Vec<(&'a str, String)>> {
    let mut changed = false;
    let stripped = values
        .iter()
        .map(|(n, v)| match (*n, v.rsplit_once(':')) {
            ("host", Some((host, port)))
                if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                changed = true;
                (*n, host.to_string())
            }
            _ => (*n, v.clone()),
        })
        .collect();
    changed.then_some(stripped)
}

/// Checks the signature, which covers the body.
pub fn verify(
    caller: &Caller<'_>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<()> {
    let Caller {
        auth,
        timestamp,
        secret_key,
        unsigned_payload,
        ..
    } = caller;
    let timestamp = *timestamp;
    let payload_hash = if *unsigned_payload {
        tc3::sha256_hex(b"UNSIGNED-PAYLOAD")
    } else if *method == Method::GET {
        tc3::sha256_hex(b"")
    } else {
        tc3::sha256_hex(body)
    };
    let query = if *method == Method::GET {
        uri.query().unwrap_or_default()
    } else {
        ""
    };
    // The signed headers' values exactly as received; the documented form lowercases them,
    // the Python SDK signs them as sent, so either is accepted.
    let raw: Vec<(&str, String)> = auth
        .signed_headers
        .iter()
        .map(|name| {
            let value = headers
                .get(*name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
                .unwrap_or_default();
            (*name, value)
        })
        .collect();
    let lowered: Vec<(&str, String)> = raw.iter().map(|(n, v)| (*n, v.to_lowercase())).collect();
    let verifies = |values: &[(&str, String)]| {
        let pairs: Vec<(&str, &str)> = values.iter().map(|(n, v)| (*n, v.as_str())).collect();
        tc3::verify_for(
            secret_key,
            auth.service,
            &SignInput {
                method: method.as_str(),
                query,
                headers: &pairs,
                payload_hash: &payload_hash,
                timestamp,
            },
            auth.signature,
        )
    };
    let mut forms = vec![lowered.clone()];
    if raw != lowered {
        forms.push(raw.clone());
    }
    forms.extend([portless(&lowered), portless(&raw)].into_iter().flatten());
    if forms.iter().any(|form| verifies(form)) {
        Ok(())
    } else {
        Err(failure(
            "AuthFailure.SignatureFailure",
            "The signature does not match; check the SecretKey and how the request is signed.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_also_tried_without_its_port() {
        let signed = vec![
            ("content-type", "application/json".to_string()),
            ("host", "127.0.0.1:9000".to_string()),
        ];
        assert_eq!(
            portless(&signed).unwrap()[1],
            ("host", "127.0.0.1".to_string())
        );
        let no_port = vec![("host", "scf.example.com".to_string())];
        assert!(portless(&no_port).is_none());
        // An IPv6 literal keeps its own colons; only a trailing port goes.
        let v6 = vec![("host", "[::1]:9000".to_string())];
        assert_eq!(portless(&v6).unwrap()[0].1, "[::1]");
    }
}
