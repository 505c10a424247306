//! Reading action parameters: JSON bodies (POST) and the SDK's flattened query strings (GET,
//! `Environment.Variables.0.Key=…`) both become one JSON object, then a typed request model.

use super::error::{ApiError, ApiResult};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// SCF parameters of features scf-console does not have. SCF's own defaults and "off" values
/// are accepted and change nothing, so clients that send back what GetFunction answered (or
/// what their SDK fills in) work; a value that would need the feature is refused with
/// `UnsupportedOperation` rather than silently dropped.
const UNSUPPORTED: &[&str] = &[
    "VpcConfig",
    "Role",
    "Layers",
    "DeadLetterConfig",
    "CfsConfig",
    "Tags",
    "ClsLogsetId",
    "ClsTopicId",
    "ProtocolType",
    "ProtocolParams",
    "InstanceConcurrencyConfig",
    "IntranetConfig",
    "L5Enable",
    "OnsEnable",
    "InitTimeout",
    "DnsCache",
    "AutoDeployClsTopicIndex",
    "AutoCreateClsTopic",
    "CosBucketName",
    "CosObjectName",
    "CosBucketRegion",
    "EnvId",
    "ResourceEnv",
    "IgnoreSysLog",
    "EipConfig",
];

/// The most parameters one call may send. SCF's largest requests (a function with its
/// environment) stay far below; bounding the count keeps a query string from becoming an
/// allocation of any size.
pub const MAX_PARAMETERS: usize = 1000;
/// The most dot-separated parts a flattened name may have. SCF's deepest names have four
/// (`Environment.Variables.0.Key`); bounding the depth bounds the recursion that reads them.
pub const MAX_DEPTH: usize = 8;
/// The longest parameter name accepted.
pub const MAX_NAME_BYTES: usize = 256;

/// Refuses a query string with more parameters than [`MAX_PARAMETERS`], counted before any
/// of it is decoded.
pub fn check_query_size(query: &str) -> ApiResult<()> {
    let count = query.split('&').filter(|p| !p.is_empty()).count();
    if count > MAX_PARAMETERS {
        return Err(ApiError::new(
            "InvalidParameter",
            format!("The request has {count} parameters; at most {MAX_PARAMETERS} are accepted."),
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.len() > MAX_NAME_BYTES {
        let start: String = name.chars().take(40).collect();
        return Err(ApiError::new(
            "InvalidParameter",
            format!(
                "The parameter name {start}… is {} bytes long; at most {MAX_NAME_BYTES} are accepted.",
                name.len()
            ),
        ));
    }
    if name.split('.').count() > MAX_DEPTH {
        return Err(ApiError::new(
            "InvalidParameter",
            format!("The parameter {name} is nested more than {MAX_DEPTH} levels deep."),
        ));
    }
    Ok(())
}

/// Whether a value of an unsupported parameter asks for nothing: SCF's default or "off".
fn is_off(name: &str, v: &Value) -> bool {
    match (name, v) {
        // Limits and switches that mean nothing without the feature, whatever their value:
        // loading is bounded by the function's timeout, there is no log service to skip.
        ("InitTimeout" | "IgnoreSysLog" | "IdleTimeOut", _) => true,
        // One request at a time per instance is what scf-console does.
        ("MaxConcurrency", v) => v.as_i64().or_else(|| v.as_str()?.parse().ok()) == Some(1),
        (_, Value::Null | Value::Bool(false)) => true,
        (_, Value::String(s)) => {
            s.is_empty()
                || ["FALSE", "DISABLE", "OFF"]
                    .iter()
                    .any(|off| s.eq_ignore_ascii_case(off))
        }
        (_, Value::Number(n)) => n.as_f64() == Some(0.0),
        (_, Value::Array(a)) => a.iter().all(|item| is_off(name, item)),
        (_, Value::Object(o)) => o.iter().all(|(k, v)| is_off(k, v)),
        (_, Value::Bool(true)) => false,
    }
}

/// Turns `[("Environment.Variables.0.Key", "A")]` into `{"Environment":{"Variables":[{"Key":"A"}]}}`.
///
/// Names are checked for length and depth first, so the tree built, and the recursion that
/// turns it into arrays, are never deeper than [`MAX_DEPTH`].
pub fn unflatten(pairs: &[(String, String)]) -> ApiResult<Value> {
    // The count was bounded by `check_query_size` before the pairs were decoded.
    for (name, _) in pairs {
        check_name(name)?;
    }
    let mut root = Value::Object(Map::new());
    for (name, value) in pairs {
        let mut node = &mut root;
        let parts: Vec<&str> = name.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let Value::Object(map) = node else {
                return Err(ApiError::new(
                    "InvalidParameter",
                    format!("The parameter {name} conflicts with another parameter."),
                ));
            };
            if i == parts.len() - 1 {
                map.insert(part.to_string(), Value::String(value.clone()));
                break;
            }
            node = map
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    Ok(arrays(root))
}

/// Objects whose keys are all indexes (`0`, `1`, …) become arrays in index order.
fn arrays(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let indexed: Option<Vec<(usize, Value)>> = map
                .iter()
                .map(|(k, v)| k.parse::<usize>().ok().map(|i| (i, v.clone())))
                .collect();
            match indexed {
                Some(mut items) if !items.is_empty() => {
                    items.sort_by_key(|(i, _)| *i);
                    Value::Array(items.into_iter().map(|(_, v)| arrays(v)).collect())
                }
                _ => Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect()),
            }
        }
        other => other,
    }
}

/// Reads an action's request model, mapping each kind of failure to its SCF code.
pub fn parse<T: DeserializeOwned>(action: &str, mut params: Value) -> ApiResult<T> {
    if let Value::Object(map) = &mut params {
        for name in UNSUPPORTED {
            if let Some(v) = map.get(*name) {
                if !is_off(name, v) {
                    return Err(ApiError::new(
                        "UnsupportedOperation",
                        format!(
                            "scf-console does not support {name}: only its default or off value is accepted."
                        ),
                    ));
                }
                map.remove(*name);
            }
        }
    } else {
        return Err(ApiError::new(
            "InvalidParameter",
            "The request body must be a JSON object of parameters.",
        ));
    }
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if let Some(rest) = inner.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or("");
            // The path ends with the unknown field itself.
            let name = match path.rsplit_once('.') {
                Some((parent, _)) if !parent.is_empty() => format!("{parent}.{field}"),
                _ => field.to_string(),
            };
            ApiError::new(
                "UnknownParameter",
                format!("The parameter {name} is not recognized by {action}."),
            )
        } else if let Some(rest) = inner.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or("");
            ApiError::new(
                "MissingParameter",
                format!("The parameter {field} is required by {action}."),
            )
        } else {
            ApiError::new(
                "InvalidParameter",
                format!("The parameter {path} is malformed: {inner}."),
            )
        }
    })
}

/// An integer sent as a JSON number, or as a string by GET requests.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Num(i64),
        Str(String),
    }
    match Option::<Int>::deserialize(d)? {
        None => Ok(None),
        Some(Int::Num(n)) => Ok(Some(n)),
        Some(Int::Str(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an integer"))),
    }
}

/// A boolean sent as JSON, or as `true`/`false` strings by GET requests.
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Bool {
        B(bool),
        Str(String),
    }
    match Option::<Bool>::deserialize(d)? {
        None => Ok(None),
        Some(Bool::B(b)) => Ok(Some(b)),
        Some(Bool::Str(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Bool::Str(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(Bool::Str(s)) => Err(serde::de::Error::custom(format!(
            "{s:?} is not true or false"
        ))),
    }
}

/// `Order`: `ASC` or `DESC` (any case), `default_ascending` when absent. Answers "ascending".
pub fn order(given: Option<&str>, default_ascending: bool) -> ApiResult<bool> {
    match given.map(str::to_ascii_uppercase).as_deref() {
        None | Some("") => Ok(default_ascending),
        Some("ASC") => Ok(true),
        Some("DESC") => Ok(false),
        Some(_) => Err(ApiError::new(
            "InvalidParameterValue.Order",
            "Order is ASC or DESC.",
        )),
    }
}

/// `Offset`: a whole number from 0, default 0.
pub fn offset(given: Option<i64>) -> ApiResult<u32> {
    let offset = given.unwrap_or(0);
    u32::try_from(offset).map_err(|_| {
        ApiError::new(
            "InvalidParameterValue.Offset",
            "Offset is a whole number from 0.",
        )
    })
}

/// `Limit`: default 20, within `min..=100`.
pub fn limit(given: Option<i64>, min: i64) -> ApiResult<u32> {
    let limit = given.unwrap_or(20);
    if (min..=100).contains(&limit) {
        Ok(limit as u32)
    } else {
        Err(ApiError::new(
            "InvalidParameterValue.Limit",
            format!("Limit is {min} to 100."),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattened_queries_become_nested_parameters() {
        let pairs: Vec<(String, String)> = [
            ("FunctionName", "f"),
            ("Environment.Variables.1.Key", "B"),
            ("Environment.Variables.0.Key", "A"),
            ("Environment.Variables.0.Value", "1"),
            ("Status.0", "RUNNING"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            unflatten(&pairs).unwrap(),
            json!({
                "FunctionName": "f",
                "Environment": {"Variables": [{"Key": "A", "Value": "1"}, {"Key": "B"}]},
                "Status": ["RUNNING"]
            })
        );
    }

    #[test]
    fn hostile_queries_are_refused_before_they_grow() {
        let pair = |k: String| vec![(k, "1".to_string())];
        let e = unflatten(&pair(["a"; 9].join("."))).unwrap_err();
        assert_eq!(e.code, "InvalidParameter");
        assert!(e.message.contains("nested more than 8"), "{}", e.message);
        let e = unflatten(&pair(vec!["a"; 16_000].join("."))).unwrap_err();
        assert!(e.message.contains("at most 256"), "{}", e.message);
        let many = vec!["a=1"; MAX_PARAMETERS + 1].join("&");
        assert!(
            check_query_size(&many)
                .unwrap_err()
                .message
                .contains("1001 parameters")
        );
        assert!(check_query_size(&vec!["a=1"; MAX_PARAMETERS].join("&")).is_ok());
        assert!(unflatten(&pair("A.B.C.D.E.F.G.H".into())).is_ok());
    }

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    struct Sample {
        function_name: String,
        #[serde(default, deserialize_with = "int")]
        memory_size: Option<i64>,
    }

    #[test]
    fn failures_map_to_scf_codes() {
        let ok: Sample = parse("X", json!({"FunctionName": "f", "MemorySize": "256"})).unwrap();
        assert_eq!(
            (ok.function_name.as_str(), ok.memory_size),
            ("f", Some(256))
        );
        let e = parse::<Sample>("X", json!({"FunctionName": "f", "Bogus": 1})).unwrap_err();
        assert_eq!(e.code, "UnknownParameter");
        assert!(e.message.contains("Bogus"));
        assert_eq!(
            parse::<Sample>("X", json!({})).unwrap_err().code,
            "MissingParameter"
        );
        let e =
            parse::<Sample>("X", json!({"FunctionName": "f", "MemorySize": "big"})).unwrap_err();
        assert_eq!(e.code, "InvalidParameter");
        assert!(e.message.contains("MemorySize"), "{}", e.message);
        let e = parse::<Sample>("X", json!({"FunctionName": "f", "Role": "admin"})).unwrap_err();
        assert_eq!(e.code, "UnsupportedOperation");
        assert!(parse::<Sample>("X", json!({"FunctionName": "f", "Role": ""})).is_ok());
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;
        use serde_json::Value;

        /// SCF-shaped parameters: objects with capitalised names, lists of them, strings.
        fn parameters() -> impl Strategy<Value = Value> {
            let leaf = "[a-zA-Z0-9 _-]{1,12}".prop_map(Value::String);
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 1..4).prop_map(Value::Array),
                    prop::collection::btree_map("[A-Z][a-zA-Z]{0,8}", inner, 1..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
            let name = |k: &str| {
                if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                }
            };
            match v {
                Value::Object(m) => m.iter().for_each(|(k, v)| flatten(&name(k), v, out)),
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| flatten(&name(&i.to_string()), v, out)),
                Value::String(s) => out.push((prefix.to_string(), s.clone())),
                _ => unreachable!(),
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever query a client sends, it is decoded or refused, never a panic, and a
            /// nesting deeper than allowed is refused.
            #[test]
            fn any_query_is_decoded_or_refused(query in "[A-Za-z0-9.=&%+_-]{0,600}") {
                if check_query_size(&query).is_ok() {
                    let pairs: Vec<(String, String)> =
                        form_urlencoded::parse(query.as_bytes()).into_owned().collect();
                    if let Ok(v) = unflatten(&pairs) {
                        fn depth(v: &Value) -> usize {
                            match v {
                                Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
                                Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
                                _ => 0,
                            }
                        }
                        prop_assert!(depth(&v) <= MAX_DEPTH + 1);
                    }
                }
            }

            /// Parameters flattened as a GET call sends them come back as they were.
            #[test]
            fn flattened_parameters_come_back_whole(
                params in prop::collection::btree_map("[A-Z][a-zA-Z]{0,8}", parameters(), 1..5),
            ) {
                let params = Value::Object(params.into_iter().collect());
                let mut pairs = Vec::new();
                flatten("", &params, &mut pairs);
                prop_assert_eq!(unflatten(&pairs).expect("within the limits"), params);
            }
        }
    }
}
