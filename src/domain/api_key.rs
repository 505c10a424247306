//! API keys: a SecretId that names the key and a SecretKey that signs requests.

use super::rules::FieldError;

pub const DESCRIPTION_MAX_CHARS: usize = 100;

/// A freshly generated key pair, shaped like Tencent Cloud's (`AKID` + 32 characters).
pub struct GeneratedKey {
    pub secret_id: String,
    pub secret_key: String,
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

pub fn random_text(len: usize) -> String {
    // Rejection sampling keeps every character equally likely.
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).expect("the operating system provides randomness");
        for b in buf {
            if out.len() == len {
                break;
            }
            if (b as usize) < ALPHABET.len() * 4 {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    out
}

pub fn generate() -> GeneratedKey {
    GeneratedKey {
        secret_id: format!("AKID{}", random_text(32)),
        secret_key: random_text(32),
    }
}

/// A SecretId given by configuration: printable, no spaces or separators that would break the
/// Authorization header.
pub fn validate_secret_id(id: &str) -> Result<(), FieldError> {
    if (4..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(FieldError::new(
            "SecretId",
            "InvalidParameterValue",
            "A SecretId is 4-128 letters, digits, - and _.",
        ))
    }
}

pub fn validate_secret_key(key: &str) -> Result<(), FieldError> {
    if (16..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(FieldError::new(
            "SecretKey",
            "InvalidParameterValue",
            "A SecretKey is 16-128 printable characters without spaces.",
        ))
    }
}

pub fn validate_description(description: &str) -> Result<(), FieldError> {
    if description.chars().count() <= DESCRIPTION_MAX_CHARS {
        Ok(())
    } else {
        Err(FieldError::new(
            "Description",
            "InvalidParameterValue",
            format!("A key description is at most {DESCRIPTION_MAX_CHARS} characters."),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_look_like_tencent_cloud_keys_and_differ() {
        let a = generate();
        let b = generate();
        assert!(a.secret_id.starts_with("AKID") && a.secret_id.len() == 36);
        assert_eq!(a.secret_key.len(), 32);
        assert_ne!(a.secret_id, b.secret_id);
        assert!(validate_secret_id(&a.secret_id).is_ok());
        assert!(validate_secret_key(&a.secret_key).is_ok());
        assert!(validate_secret_id("has space").is_err());
        assert!(validate_secret_key("short").is_err());
    }
}
