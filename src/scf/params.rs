//! Reading action parameters: JSON bodies (POST) and the SDK's flattened query strings (GET,
//! `Environment.Variables.0.Key=…`) both become one JSON object, then a typed request model.

use super::error::{ApiError, ApiResult};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// SCF parameters scf-console does not implement. Sent empty they are ignored; sent with a
/// value they are refused, rather than silently dropped.
const UNSUPPORTED: &[&str] = &[
    "VpcConfig",
    "Role",
    "Layers",
    "DeadLetterConfig",
    "PublicNetConfig",
    "CfsConfig",
    "Tags",
    "ClsLogsetId",
    "ClsTopicId",
    "ProtocolType",
    "ProtocolParams",
    "InstanceConcurrencyConfig",
    "IntranetConfig",
    "L5Enable",
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
];

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Turns `[("Environment.Variables.0.Key", "A")]` into `{"Environment":{"Variables":[{"Key":"A"}]}}`.
pub fn unflatten(pairs: &[(String, String)]) -> ApiResult<Value> {
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
                if !is_empty(v) {
                    return Err(ApiError::new(
                        "UnsupportedOperation",
                        format!("scf-console does not support the parameter {name}."),
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
            let name = if path == "." || path.is_empty() {
                field.to_string()
            } else {
                format!("{}.{field}", parent(&path))
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

fn parent(path: &str) -> &str {
    path.rsplit_once('.').map_or(path, |(p, _)| p)
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
}
