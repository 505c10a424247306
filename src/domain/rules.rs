//! Field errors: the one shape every broken rule takes, whether the console shows it next to a
//! form field or the SCF API returns it as `Response.Error`.

use std::fmt;

/// One broken rule: which field, the SCF error code, and a message in the user's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The SCF parameter name (`FunctionName`, `MemorySize`, …), which is also the form field name.
    pub field: &'static str,
    /// The SCF API 3.0 error code, e.g. `InvalidParameterValue.FunctionName`.
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// All the rules an input broke, in form order, so a form can show every message at once and
/// the API can answer with the first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The message for one field (the first, if a field broke several rules).
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    /// True if a field with this name prefix has an error (`Environment` covers every variable row).
    pub fn any_with_prefix(&self, prefix: &str) -> bool {
        self.0.iter().any(|e| e.field.starts_with(prefix))
    }

    pub fn first(&self) -> Option<&FieldError> {
        self.0.first()
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// `Ok(value)` when no rule was broken.
    pub fn into_result<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<FieldError> for FieldErrors {
    fn from(error: FieldError) -> Self {
        Self(vec![error])
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let messages: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&messages.join("; "))
    }
}

impl std::error::Error for FieldErrors {}

/// A name of letters, digits, `-` and `_` that starts with a letter and ends with a letter or
/// digit: the shape SCF gives function names.
pub(crate) fn is_scf_identifier(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphabetic()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        }
        _ => false,
    }
}
