//! Namespace rules: names, and the `default` namespace that always exists.

use super::rules::FieldError;

/// Every region has this namespace; it can be neither created nor deleted.
pub const DEFAULT_NAMESPACE: &str = "default";
pub const NAMESPACE_MAX_CHARS: usize = 30;
pub const NAMESPACE_DESCRIPTION_MAX_CHARS: usize = 60;

/// The shape of a namespace name (1-30 letters, digits, `-`, `_`).
pub fn is_valid_namespace_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAMESPACE_MAX_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a name for a namespace about to be created.
pub fn validate_new_namespace(name: &str, description: &str) -> Result<(), FieldError> {
    if name.is_empty() {
        return Err(FieldError::new(
            "Namespace",
            "MissingParameter",
            "Enter a namespace name.",
        ));
    }
    if !is_valid_namespace_name(name) {
        return Err(FieldError::new(
            "Namespace",
            "InvalidParameterValue.Namespace",
            "Namespace names are 1-30 characters of letters, digits, - and _.",
        ));
    }
    if name == DEFAULT_NAMESPACE {
        return Err(FieldError::new(
            "Namespace",
            "InvalidParameterValue.DefaultNamespace",
            "The default namespace always exists and cannot be created.",
        ));
    }
    if description.chars().count() > NAMESPACE_DESCRIPTION_MAX_CHARS {
        return Err(FieldError::new(
            "Description",
            "InvalidParameterValue.Description",
            format!(
                "A namespace description is at most {NAMESPACE_DESCRIPTION_MAX_CHARS} characters."
            ),
        ));
    }
    Ok(())
}

/// Checks that a namespace may be deleted (emptiness is the store's to check).
pub fn validate_namespace_deletion(name: &str) -> Result<(), FieldError> {
    if name == DEFAULT_NAMESPACE {
        return Err(FieldError::new(
            "Namespace",
            "InvalidParameterValue.Namespace",
            "The default namespace cannot be deleted.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names() {
        assert!(validate_new_namespace("team-a_1", "").is_ok());
        assert!(validate_new_namespace(&"n".repeat(30), "").is_ok());
        for bad in ["", "a b", "ns.1", &"n".repeat(31), "default"] {
            assert!(validate_new_namespace(bad, "").is_err(), "{bad}");
        }
        assert!(validate_namespace_deletion("default").is_err());
        assert!(validate_namespace_deletion("team-a").is_ok());
    }
}

/// The invocation quota as typed: empty means unlimited.
pub fn parse_quota(raw: &str) -> Result<Option<i64>, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    match raw.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(Some(n)),
        _ => Err(FieldError::new(
            "InvocationQuota",
            "InvalidParameterValue.InvocationQuota",
            "The invocation quota is a whole number from 0, or empty for no quota.",
        )),
    }
}

#[cfg(test)]
mod quota_tests {
    use super::parse_quota;

    #[test]
    fn quotas() {
        assert_eq!(parse_quota(""), Ok(None));
        assert_eq!(parse_quota(" 250 "), Ok(Some(250)));
        assert!(parse_quota("-1").is_err());
        assert!(parse_quota("lots").is_err());
    }
}
