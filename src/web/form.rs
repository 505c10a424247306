//! Reading console forms. Field names are the SCF parameter names, and environment variables
//! use SCF's flattened form, `Environment.Variables.0.Key` / `.Value`, so one vocabulary runs
//! from form to store to API.

use crate::domain::function::{ConfigDraft, EnvVar, FunctionDraft};
use crate::domain::rules::FieldError;
use crate::error::AppError;
use axum::extract::{FromRequest, RawForm, Request};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

/// The most environment rows a form reads or shows: more than anyone types by hand, and the
/// 4 KB size rule refuses real abuse earlier. Every row count a client sends is held to it, so
/// no request can make a form page grow without bound.
pub const MAX_ENV_ROWS: usize = 100;

fn too_many_env_rows() -> FieldError {
    FieldError::new(
        "Environment",
        "LimitExceeded.Environment",
        format!("A function can have at most {MAX_ENV_ROWS} environment variables."),
    )
}

/// The most fields a console form may send. The largest form, the wizard's, has a few dozen
/// plus two per environment row; counting before decoding keeps a body of `&&&…` from
/// becoming a million allocations.
pub const MAX_FORM_FIELDS: usize = 1000;

/// A submitted form's fields, read from a body within the body limit and held to
/// [`MAX_FORM_FIELDS`].
pub struct FormFields(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for FormFields {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawForm(bytes) = RawForm::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let count = bytes
            .split(|b| *b == b'&')
            .filter(|p| !p.is_empty())
            .count();
        if count > MAX_FORM_FIELDS {
            return Err(AppError::BadRequest(format!(
                "The form sent {count} fields; a console form has at most {MAX_FORM_FIELDS}."
            ))
            .into_response());
        }
        Ok(FormFields(
            form_urlencoded::parse(&bytes).into_owned().collect(),
        ))
    }
}

/// A form that may carry a zip package (`ZipFile`): urlencoded as usual, or multipart when
/// the user picked a file. The route sets a body limit that fits the largest package.
pub struct FormWithFile {
    pub fields: Vec<(String, String)>,
    /// The zip's bytes, when a file was picked.
    pub zip: Option<Vec<u8>>,
    /// Sent as multipart: a form with a file input.
    pub multipart: bool,
}

/// The file input of the forms that take a package.
pub const ZIP_FIELD: &str = "ZipFile";

impl<S: Send + Sync> FromRequest<S> for FormWithFile {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let multipart = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        if !multipart {
            let FormFields(fields) = FormFields::from_request(req, state).await?;
            return Ok(FormWithFile {
                fields,
                zip: None,
                multipart: false,
            });
        }
        let bad = |why: String| AppError::BadRequest(why).into_response();
        let mut form = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let mut fields = Vec::new();
        let mut zip = None;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| bad(format!("The form did not arrive whole: {}.", e.body_text())))?
        {
            if fields.len() >= MAX_FORM_FIELDS {
                return Err(bad(format!(
                    "The form sent more than {MAX_FORM_FIELDS} fields; a console form has fewer."
                )));
            }
            let name = field.name().unwrap_or_default().to_string();
            let picked = field.file_name().is_some_and(|f| !f.is_empty());
            let bytes = field
                .bytes()
                .await
                .map_err(|e| bad(format!("The form did not arrive whole: {}.", e.body_text())))?;
            if name == ZIP_FIELD {
                if picked && !bytes.is_empty() {
                    zip = Some(bytes.to_vec());
                }
            } else {
                fields.push((name, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
        Ok(FormWithFile {
            fields,
            zip,
            multipart: true,
        })
    }
}

/// A submitted form as name/value pairs, in order.
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of a field that may repeat (`status=failed&status=running`).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Environment rows in index order, blank rows included so the form can show them back.
    pub fn environment(&self) -> Vec<EnvVar> {
        let mut rows: BTreeMap<usize, EnvVar> = BTreeMap::new();
        for (name, value) in &self.0 {
            let Some(rest) = name.strip_prefix("Environment.Variables.") else {
                continue;
            };
            let Some((index, part)) = rest.split_once('.') else {
                continue;
            };
            let Ok(index) = index.parse::<usize>() else {
                continue;
            };
            if index >= MAX_ENV_ROWS {
                continue;
            }
            let row = rows.entry(index).or_default();
            match part {
                "Key" => row.key = value.clone(),
                "Value" => row.value = value.clone(),
                _ => {}
            }
        }
        rows.into_values().collect()
    }

    /// Refuses a filled environment row beyond [`MAX_ENV_ROWS`], which
    /// [`Fields::environment`] would otherwise leave out without a word.
    pub fn env_limit_error(&self) -> Option<FieldError> {
        self.0
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .filter_map(|(name, _)| name.strip_prefix("Environment.Variables."))
            .filter_map(|rest| rest.split_once('.'))
            .any(|(index, _)| index.parse::<usize>().map_or(true, |i| i >= MAX_ENV_ROWS))
            .then(too_many_env_rows)
    }

    /// "Add variable" without JavaScript: the blank rows to show beyond the one always there.
    /// The count comes back from the form, so it is held to what [`MAX_ENV_ROWS`] leaves room
    /// for; asking for more says so instead of drawing a bigger page.
    pub fn added_env_rows(&self, vars: &[EnvVar]) -> (usize, Option<FieldError>) {
        let filled = vars
            .iter()
            .filter(|v| !(v.key.is_empty() && v.value.is_empty()))
            .count();
        let room = MAX_ENV_ROWS.saturating_sub(filled + 1);
        let raw = self.get("_env_extra").trim();
        let asked = match raw.parse::<u64>() {
            Ok(n) => n,
            // Digits too many for a u64 ask for more than the limit, not for nothing.
            Err(_) if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) => u64::MAX,
            Err(_) => 0,
        }
        .saturating_add(1);
        match usize::try_from(asked) {
            Ok(n) if n <= room => (n, None),
            _ => (room, Some(too_many_env_rows())),
        }
    }

    /// A checkbox sends `TRUE` when ticked and nothing when not.
    pub fn flag(&self, name: &str) -> String {
        if self.get(name).is_empty() {
            "FALSE".into()
        } else {
            self.get(name).to_string()
        }
    }

    pub fn config_draft(&self) -> ConfigDraft {
        ConfigDraft {
            description: self.get("Description").to_string(),
            memory_size: self.get("MemorySize").to_string(),
            timeout: self.get("Timeout").to_string(),
            environment: self.environment(),
            trace_enable: self.flag("TraceEnable"),
            retry_num: self.get("RetryNum").to_string(),
            msg_ttl: self.get("MsgTTL").to_string(),
            qps_limit: self.get("QpsLimit").to_string(),
            public_net: self.flag("PublicNetConfig"),
        }
    }

    pub fn function_draft(&self) -> FunctionDraft {
        let mut config = self.config_draft();
        // The wizard offers Status Trace only while Async Execution is ticked: a box left
        // ticked but hidden (async unticked with scripts off) does not count.
        if self.flag("AsyncRunEnable").eq_ignore_ascii_case("FALSE") {
            config.trace_enable = "FALSE".into();
        }
        FunctionDraft {
            function_name: self.get("FunctionName").to_string(),
            runtime: self.get("Runtime").to_string(),
            handler: self.get("Handler").to_string(),
            // Browsers send textarea line breaks as CRLF; store what the user sees.
            code: self.get("Code").replace("\r\n", "\n"),
            package: None,
            async_run_enable: self.flag("AsyncRunEnable"),
            config,
        }
    }
}

/// The rule a form input belongs to: every environment row reports under `Environment`.
pub fn rule_field(input_name: &str) -> &str {
    if input_name.starts_with("Environment.") {
        "Environment"
    } else {
        input_name
    }
}

/// The rows an environment editor shows: the variables plus one blank row to type into.
pub fn env_rows(vars: &[EnvVar], extra_blank: usize) -> Vec<EnvVar> {
    let mut rows: Vec<EnvVar> = vars
        .iter()
        .filter(|v| !(v.key.is_empty() && v.value.is_empty()))
        .cloned()
        .collect();
    let blank = extra_blank
        .saturating_add(1)
        .min(MAX_ENV_ROWS.saturating_sub(rows.len()));
    rows.extend(std::iter::repeat_n(EnvVar::default(), blank));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_rows_read_in_index_order() {
        let f = Fields(vec![
            ("Environment.Variables.1.Key".into(), "B".into()),
            ("Environment.Variables.0.Key".into(), "A".into()),
            ("Environment.Variables.0.Value".into(), "1".into()),
            ("Environment.Variables.1.Value".into(), "2".into()),
            ("Environment.Variables.x.Key".into(), "ignored".into()),
        ]);
        let env = f.environment();
        assert_eq!(env.len(), 2);
        assert_eq!((env[0].key.as_str(), env[0].value.as_str()), ("A", "1"));
        assert_eq!((env[1].key.as_str(), env[1].value.as_str()), ("B", "2"));
    }

    #[test]
    fn row_counts_from_the_client_are_bounded() {
        let asking = |extra: &str| Fields(vec![("_env_extra".into(), extra.into())]);
        assert_eq!(asking("2").added_env_rows(&[]), (3, None));
        let (rows, error) = asking("1000000000000000").added_env_rows(&[]);
        assert_eq!(rows, MAX_ENV_ROWS - 1);
        assert_eq!(error.unwrap().code, "LimitExceeded.Environment");
        assert!(
            asking("99999999999999999999999")
                .added_env_rows(&[])
                .1
                .is_some()
        );
        assert_eq!(env_rows(&[], usize::MAX).len(), MAX_ENV_ROWS);
        let far = Fields(vec![("Environment.Variables.100.Key".into(), "K".into())]);
        assert!(far.env_limit_error().is_some());
        let blank = Fields(vec![("Environment.Variables.100.Key".into(), "".into())]);
        assert!(blank.env_limit_error().is_none());
    }

    mod properties {
        use super::super::*;
        use axum::body::Body;
        use proptest::prelude::*;

        fn decode(body: Vec<u8>) -> Result<usize, u16> {
            let request = axum::http::Request::post("/")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(async {
                FormFields::from_request(request, &())
                    .await
                    .map(|f| f.0.len())
                    .map_err(|r| r.status().as_u16())
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any body is decoded or refused with 400, never a panic, and never into more
            /// fields than a console form may have.
            #[test]
            fn any_form_body_is_decoded_or_refused(body in prop::collection::vec(any::<u8>(), 0..3000)) {
                match decode(body) {
                    Ok(fields) => prop_assert!(fields <= MAX_FORM_FIELDS),
                    Err(status) => prop_assert_eq!(status, 400),
                }
            }

            /// A body of many separators is refused by counting, before it is decoded.
            #[test]
            fn too_many_fields_are_refused(extra in 1usize..500) {
                let body = "a=1&".repeat(MAX_FORM_FIELDS + extra).into_bytes();
                prop_assert_eq!(decode(body), Err(400));
            }

            /// Whatever environment rows a form names, at most the allowed number are read,
            /// in index order.
            #[test]
            fn environment_rows_stay_within_the_limit(
                rows in prop::collection::vec(("[0-9]{1,4}|x|-1|", "Key|Value|Other", "[a-z]{0,5}"), 0..300),
            ) {
                let fields = Fields(
                    rows.iter()
                        .map(|(i, part, v)| (format!("Environment.Variables.{i}.{part}"), v.clone()))
                        .collect(),
                );
                prop_assert!(fields.environment().len() <= MAX_ENV_ROWS);
                // A filled row the form cannot show is refused, whatever its part is called.
                let filled_beyond = rows.iter().any(|(i, _, v)| {
                    !v.is_empty() && i.parse::<usize>().map_or(true, |i| i >= MAX_ENV_ROWS)
                });
                prop_assert_eq!(fields.env_limit_error().is_some(), filled_beyond);
            }
        }
    }
}
