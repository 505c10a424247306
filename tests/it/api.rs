//! The SCF API 3.0 as a script or SDK meets it: signed calls, SCF field names, SCF error codes,
//! and the same functions the console shows.

use crate::support::api::*;
use crate::support::*;
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use std::time::Duration;

const HELLO: &str = "def main_handler(event, context):\n    return event\n";

async fn app_with_key() -> TestApp {
    let app = TestApp::new().await;
    app.add_key().await;
    app
}

fn create_params(name: &str) -> Value {
    json!({
        "FunctionName": name,
        "Runtime": "Python3.9",
        "Handler": "index.main_handler",
        "Code": {"ZipFile": zip_base64(&[("index.py", HELLO), ("lib/helper.py", "X = 1\n")])},
    })
}

async fn function_count(app: &TestApp) -> i64 {
    app.api("ListFunctions", json!({})).await.ok()["TotalCount"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn the_function_lifecycle_through_the_api_shows_in_the_console() {
    let app = app_with_key().await;
    let mut params = create_params("api-fn");
    params["Description"] = json!("made by a script");
    params["MemorySize"] = json!(256);
    params["Timeout"] = json!(7200);
    params["AsyncRunEnable"] = json!("TRUE");
    params["TraceEnable"] = json!("TRUE");
    params["Environment"] = json!({"Variables": [{"Key": "STAGE", "Value": "test"}]});
    let created = app.api("CreateFunction", params).await;
    assert_eq!(
        created.ok().as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["RequestId"]
    );

    let got = app
        .api("GetFunction", json!({"FunctionName": "api-fn"}))
        .await;
    let f = got.ok();
    assert_eq!(f["FunctionName"], "api-fn");
    assert_eq!(f["Namespace"], "default");
    assert_eq!(f["Runtime"], "Python3.9");
    assert_eq!(f["Handler"], "index.main_handler");
    assert_eq!(f["Description"], "made by a script");
    assert_eq!(f["MemorySize"], 256);
    assert_eq!(f["Timeout"], 7200);
    assert_eq!(f["AsyncRunEnable"], "TRUE");
    assert_eq!(f["TraceEnable"], "TRUE");
    assert_eq!(
        f["Environment"],
        json!({"Variables": [{"Key": "STAGE", "Value": "test"}]})
    );
    assert_eq!(f["Status"], "Active");
    assert_eq!(f["AddTime"], "2026-11-29 10:00:00");
    assert_eq!(f["CodeSize"], (HELLO.len() + 6) as u64);

    // The console shows the same function, and the zip's handler file in the Code tab.
    let page = app.get(&function_url("default", "api-fn", "config")).await;
    assert_eq!(page.texts(".facts .badge"), vec!["On", "On"]);
    assert_eq!(page.attr("#MemorySize", "value").as_deref(), Some("256"));
    let code = app.get(&function_url("default", "api-fn", "code")).await;
    assert_eq!(code.text("label[for=Code]"), "index.py");
    assert!(
        code.text("#Code")
            .contains("def main_handler(event, context):")
    );
    assert!(
        code.texts(".file-list li code")
            .contains(&"lib/helper.py".to_string())
    );

    app.state.clock.advance(Duration::from_secs(60));
    let updated = app
        .api(
            "UpdateFunctionConfiguration",
            json!({"FunctionName": "api-fn", "MemorySize": 512, "Description": "tuned", "TraceEnable": "FALSE"}),
        )
        .await;
    updated.ok();
    let f = app
        .api("GetFunction", json!({"FunctionName": "api-fn"}))
        .await;
    let f = f.ok();
    assert_eq!(
        (f["MemorySize"].as_i64(), f["Timeout"].as_i64()),
        (Some(512), Some(7200)),
        "only what was sent changes"
    );
    assert_eq!(f["Description"], "tuned");
    assert_eq!(f["TraceEnable"], "FALSE");
    assert_eq!(f["ModTime"], "2026-11-29 10:01:00");

    let new_code = "def run(event, context):\n    return 'v2'\n";
    app.api(
        "UpdateFunctionCode",
        json!({"FunctionName": "api-fn", "Handler": "app.run", "ZipFile": zip_base64(&[("app.py", new_code)])}),
    )
    .await
    .ok();
    let code = app.get(&function_url("default", "api-fn", "code")).await;
    assert_eq!(code.text("label[for=Code]"), "app.py");
    assert_eq!(code.text("#Code"), "def run(event, context): return 'v2'");
    assert_eq!(
        code.count(".card .muted code"),
        0,
        "a package replaces every file"
    );

    let config = app
        .api(
            "GetFunctionEventInvokeConfig",
            json!({"FunctionName": "api-fn"}),
        )
        .await;
    assert_eq!(
        config.ok()["AsyncTriggerConfig"],
        json!({"RetryConfig": [{"RetryNum": 0}], "MsgTTL": 21600})
    );
    app.api(
        "UpdateFunctionEventInvokeConfig",
        json!({"FunctionName": "api-fn", "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 2}], "MsgTTL": 300}}),
    )
    .await
    .ok();
    let config = app
        .api(
            "GetFunctionEventInvokeConfig",
            json!({"FunctionName": "api-fn"}),
        )
        .await;
    assert_eq!(
        config.ok()["AsyncTriggerConfig"],
        json!({"RetryConfig": [{"RetryNum": 2}], "MsgTTL": 300})
    );

    app.api("DeleteFunction", json!({"FunctionName": "api-fn"}))
        .await
        .ok();
    let gone = app
        .api("GetFunction", json!({"FunctionName": "api-fn"}))
        .await;
    assert_eq!(gone.error_code(), "ResourceNotFound.Function");
    assert_eq!(
        app.get(&function_url("default", "api-fn", "config"))
            .await
            .status
            .as_u16(),
        404
    );
}

#[tokio::test]
async fn functions_made_in_the_console_are_listed_by_the_api_with_filters_and_paging() {
    let app = app_with_key().await;
    app.create_function("default", "alpha", &[("Description", "billing job")])
        .await;
    app.state.clock.advance(Duration::from_secs(1));
    app.create_function(
        "default",
        "beta",
        &[("AsyncRunEnable", "TRUE"), ("TraceEnable", "TRUE")],
    )
    .await;
    app.state.clock.advance(Duration::from_secs(1));
    app.create_function(
        "default",
        "gamma",
        &[
            ("Runtime", "Nodejs18.15"),
            ("Code", "exports.main_handler = async () => 1;"),
        ],
    )
    .await;

    let names = |a: &Answer| -> Vec<String> {
        a.ok()["Functions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["FunctionName"].as_str().unwrap().to_string())
            .collect()
    };
    let all = app.api("ListFunctions", json!({})).await;
    assert_eq!(
        names(&all),
        vec!["gamma", "beta", "alpha"],
        "newest first by default"
    );
    assert_eq!(all.ok()["TotalCount"], 3);
    let beta = &all.ok()["Functions"][1];
    assert_eq!(
        (
            beta["AsyncRunEnable"].as_str(),
            beta["TraceEnable"].as_str()
        ),
        (Some("TRUE"), Some("TRUE"))
    );

    let asc = app
        .api(
            "ListFunctions",
            json!({"Orderby": "FunctionName", "Order": "ASC", "Limit": 2}),
        )
        .await;
    assert_eq!(names(&asc), vec!["alpha", "beta"]);
    assert_eq!(asc.ok()["TotalCount"], 3, "the total ignores paging");
    let second = app
        .api(
            "ListFunctions",
            json!({"Orderby": "FunctionName", "Order": "ASC", "Offset": 2}),
        )
        .await;
    assert_eq!(names(&second), vec!["gamma"]);

    let search = app.api("ListFunctions", json!({"SearchKey": "ET"})).await;
    assert_eq!(names(&search), vec!["beta"]);
    let by_description = app
        .api("ListFunctions", json!({"Description": "billing"}))
        .await;
    assert_eq!(names(&by_description), vec!["alpha"]);
    let node = app
        .api(
            "ListFunctions",
            json!({"Filters": [{"Name": "Runtime", "Values": ["Nodejs18.15"]}]}),
        )
        .await;
    assert_eq!(names(&node), vec!["gamma"]);
    let traced = app
        .api(
            "ListFunctions",
            json!({"Filters": [{"Name": "TraceEnable", "Values": ["TRUE"]}]}),
        )
        .await;
    assert_eq!(names(&traced), vec!["beta"]);

    // SCF's other filters: every function here is an active event function with no VPC or
    // tags, reaching the network unless told otherwise.
    for (filter, expected) in [
        (json!({"Name": "Status", "Values": ["Active"]}), 3),
        (
            json!({"Name": "Status", "Values": ["CreateFailed", "Creating"]}),
            0,
        ),
        (json!({"Name": "Type", "Values": ["Event"]}), 3),
        (json!({"Name": "Type", "Values": ["HTTP"]}), 0),
        (json!({"Name": "PublicNetStatus", "Values": ["ENABLE"]}), 3),
        (json!({"Name": "PublicNetStatus", "Values": ["DISABLE"]}), 0),
        (json!({"Name": "VpcId", "Values": ["vpc-1"]}), 0),
        (json!({"Name": "tag-team", "Values": ["a"]}), 0),
    ] {
        let listed = app
            .api("ListFunctions", json!({"Filters": [filter.clone()]}))
            .await;
        assert_eq!(listed.ok()["TotalCount"], expected, "{filter}");
    }

    // The same through GET, as the SDK sends it with reqMethod="GET".
    let get = app
        .api_with(
            "ListFunctions",
            json!({"Filters": [{"Name": "AsyncRunEnable", "Values": ["FALSE"]}], "Limit": 10}),
            &Options {
                get: true,
                ..Options::default()
            },
        )
        .await;
    assert_eq!(names(&get), vec!["gamma", "alpha"]);

    for (params, code) in [
        (json!({"Order": "UP"}), "InvalidParameterValue.Order"),
        (json!({"Orderby": "Size"}), "InvalidParameterValue"),
        (json!({"Limit": 101}), "InvalidParameterValue.Limit"),
        (json!({"Offset": -1}), "InvalidParameterValue.Offset"),
        (
            // Not a code of ListFunctions' list: its parent.
            json!({"Filters": [{"Name": "Colour", "Values": ["x"]}]}),
            "InvalidParameterValue",
        ),
        (json!({"Namespace": "nope"}), "ResourceNotFound.Namespace"),
    ] {
        let a = app.api("ListFunctions", params.clone()).await;
        assert_eq!(a.error_code(), code, "{params}");
    }
}

#[tokio::test]
async fn namespaces_through_the_api() {
    let app = app_with_key().await;
    app.api(
        "CreateNamespace",
        json!({"Namespace": "team-x", "Description": "Team X"}),
    )
    .await
    .ok();
    let list = app.api("ListNamespaces", json!({})).await;
    let names: Vec<&str> = list.ok()["Namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["default", "team-x"]);
    assert_eq!(list.ok()["TotalCount"], 2);
    assert_eq!(list.ok()["Namespaces"][1]["Description"], "Team X");
    let searched = app
        .api(
            "ListNamespaces",
            json!({"SearchKey": [{"Key": "Description", "Value": "team"}]}),
        )
        .await;
    assert_eq!(searched.ok()["TotalCount"], 1);

    // A function in the new namespace keeps it from being deleted.
    let mut params = create_params("ns-fn");
    params["Namespace"] = json!("team-x");
    app.api("CreateFunction", params).await.ok();
    assert_eq!(
        app.get(&functions_url("team-x")).await.texts("a.fn-name"),
        vec!["ns-fn"]
    );
    let refused = app
        .api("DeleteNamespace", json!({"Namespace": "team-x"}))
        .await;
    assert_eq!(refused.error_code(), "FailedOperation.DeleteNamespace");
    app.api(
        "DeleteFunction",
        json!({"FunctionName": "ns-fn", "Namespace": "team-x"}),
    )
    .await
    .ok();
    app.api("DeleteNamespace", json!({"Namespace": "team-x"}))
        .await
        .ok();

    for (action, params, code) in [
        (
            "CreateNamespace",
            json!({"Namespace": "default"}),
            "InvalidParameterValue.DefaultNamespace",
        ),
        (
            "CreateNamespace",
            json!({"Namespace": "bad name"}),
            "InvalidParameterValue.Namespace",
        ),
        ("CreateNamespace", json!({}), "MissingParameter"),
        (
            "DeleteNamespace",
            json!({"Namespace": "default"}),
            "InvalidParameterValue.Namespace",
        ),
        (
            "DeleteNamespace",
            json!({"Namespace": "team-x"}),
            "ResourceNotFound.Namespace",
        ),
    ] {
        assert_eq!(
            app.api(action, params.clone()).await.error_code(),
            code,
            "{action} {params}"
        );
    }
    app.api("CreateNamespace", json!({"Namespace": "twice"}))
        .await
        .ok();
    assert_eq!(
        app.api("CreateNamespace", json!({"Namespace": "twice"}))
            .await
            .error_code(),
        "ResourceInUse.Namespace"
    );
    // Regions keep their own namespaces.
    let shanghai = app
        .api_with(
            "ListNamespaces",
            json!({}),
            &Options {
                region: Some("ap-shanghai"),
                ..Options::default()
            },
        )
        .await;
    assert_eq!(shanghai.ok()["TotalCount"], 1);
}

/// Each bad request gets its SCF code, and nothing is written.
#[tokio::test]
async fn every_rule_has_its_error_code_and_nothing_is_written() {
    let app = app_with_key().await;
    app.api("CreateFunction", create_params("taken")).await.ok();
    let with = |changes: Value| {
        let mut p = create_params("fresh");
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                p.as_object_mut().unwrap().remove(k);
            } else {
                p[k] = v.clone();
            }
        }
        p
    };
    let cases = [
        (
            with(json!({"FunctionName": "1abc"})),
            "InvalidParameterValue.FunctionName",
        ),
        (
            with(json!({"FunctionName": "x"})),
            "InvalidParameterValue.FunctionName",
        ),
        (
            with(json!({"FunctionName": "taken"})),
            "ResourceInUse.Function",
        ),
        (with(json!({"FunctionName": null})), "MissingParameter"),
        (
            with(json!({"Handler": "nodot"})),
            "InvalidParameterValue.Handler",
        ),
        (
            with(json!({"Description": "d".repeat(1001)})),
            "InvalidParameterValue.Description",
        ),
        (
            with(json!({"MemorySize": 100})),
            "InvalidParameterValue.MemorySize",
        ),
        (with(json!({"MemorySize": 4096})), "LimitExceeded.Memory"),
        (with(json!({"Timeout": 901})), "LimitExceeded.Timeout"),
        (
            with(json!({"Timeout": 86401, "AsyncRunEnable": "TRUE"})),
            "LimitExceeded.Timeout",
        ),
        (
            with(json!({"Runtime": "Go1"})),
            "InvalidParameterValue.Runtime",
        ),
        (
            with(json!({"Environment": {"Variables": [{"Key": "", "Value": "x"}]}})),
            "InvalidParameterValue.Environment",
        ),
        (
            with(
                json!({"Environment": {"Variables": [{"Key": "BIG", "Value": "x".repeat(5000)}]}}),
            ),
            "InvalidParameterValue.EnvironmentExceededLimit",
        ),
        (
            with(json!({"AsyncRunEnable": "YES"})),
            "InvalidParameterValue.AsyncRunEnable",
        ),
        (
            with(json!({"TraceEnable": "TRUE"})),
            "InvalidParameterValue.TraceEnable",
        ),
        (
            with(json!({"Namespace": "no-such-ns"})),
            "ResourceNotFound.Namespace",
        ),
        (
            with(json!({"Namespace": "bad ns"})),
            "InvalidParameterValue.Namespace",
        ),
        (with(json!({"Code": null})), "MissingParameter.Code"),
        (
            with(json!({"Code": {"ZipFile": "not base64!"}})),
            "InvalidParameterValue.ZipFile",
        ),
        (
            with(json!({"Code": {"CosBucketName": "bucket"}})),
            "UnsupportedOperation",
        ),
        (with(json!({"MemorySize": "lots"})), "InvalidParameter"),
        (with(json!({"Colour": "blue"})), "UnknownParameter"),
        // A value that would need a feature scf-console does not have.
        (
            with(json!({"VpcConfig": {"VpcId": "vpc-1"}})),
            "UnsupportedOperation",
        ),
        (with(json!({"DnsCache": "TRUE"})), "UnsupportedOperation"),
        (
            with(json!({"Tags": [{"Key": "team", "Value": "a"}]})),
            "UnsupportedOperation",
        ),
        (
            with(json!({"InstanceConcurrencyConfig": {"MaxConcurrency": 10}})),
            "UnsupportedOperation",
        ),
        (
            with(json!({"Code": {"GitUrl": "https://example.com/repo.git"}})),
            "UnsupportedOperation",
        ),
        (
            with(json!({"Code": {"ImageConfig": {"ImageType": "personal", "ImageUri": "x"}}})),
            "UnsupportedOperation",
        ),
        // A package without the handler's file could never load.
        (
            with(json!({"Code": {"ZipFile": zip_base64(&[("other.py", "x = 1")])}})),
            "InvalidParameterValue.Handler",
        ),
    ];
    for (params, code) in cases {
        let answer = app.api("CreateFunction", params.clone()).await;
        assert_eq!(answer.error_code(), code, "{}", answer.page.body);
        assert!(!answer.error_message().is_empty());
    }
    let unknown = app.api("CreateFunction", with(json!({"Bogus": 1}))).await;
    assert_eq!(
        unknown.error_message(),
        "The parameter Bogus is not recognized by CreateFunction."
    );
    assert_eq!(
        function_count(&app).await,
        1,
        "no refused call wrote anything"
    );

    // Updates and look-ups refuse in the same vocabulary.
    let checks = [
        (
            "GetFunction",
            json!({"FunctionName": "ghost"}),
            "ResourceNotFound.Function",
        ),
        (
            "GetFunction",
            json!({"FunctionName": "taken", "Qualifier": "3"}),
            "ResourceNotFound.Version",
        ),
        (
            "DeleteFunction",
            json!({"FunctionName": "ghost"}),
            "ResourceNotFound.Function",
        ),
        (
            "UpdateFunctionConfiguration",
            json!({"FunctionName": "taken", "Timeout": 0}),
            "LimitExceeded.Timeout",
        ),
        (
            "UpdateFunctionConfiguration",
            json!({"FunctionName": "taken", "TraceEnable": "TRUE"}),
            "InvalidParameterValue.TraceEnable",
        ),
        (
            "UpdateFunctionConfiguration",
            json!({"FunctionName": "taken", "Runtime": "Nodejs18.15"}),
            "InvalidParameterValue.Runtime",
        ),
        (
            "UpdateFunctionCode",
            json!({"FunctionName": "taken"}),
            "InvalidParameterValue.Code",
        ),
        (
            "UpdateFunctionCode",
            json!({"FunctionName": "taken", "ZipFile": zip_base64(&[("a.py", "")])}),
            "InvalidParameterValue.Handler",
        ),
        (
            "UpdateFunctionConfiguration",
            json!({"FunctionName": "taken", "IntranetConfig": {"IpFixed": "ENABLE"}}),
            "UnsupportedOperation",
        ),
        (
            "UpdateFunctionCode",
            json!({"FunctionName": "taken", "Handler": "bad", "ZipFile": zip_base64(&[("a.py", "")])}),
            "InvalidParameterValue.Handler",
        ),
        (
            "UpdateFunctionEventInvokeConfig",
            json!({"FunctionName": "taken", "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 3}], "MsgTTL": 60}}),
            "LimitExceeded.RetryNum",
        ),
        (
            "UpdateFunctionEventInvokeConfig",
            json!({"FunctionName": "taken", "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 1}], "MsgTTL": 30000}}),
            "LimitExceeded.MsgTTL",
        ),
        (
            "UpdateFunctionEventInvokeConfig",
            json!({"FunctionName": "taken", "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 1}, {"RetryNum": 2}], "MsgTTL": 60}}),
            "InvalidParameterValue.AsyncTriggerConfig",
        ),
        (
            "UpdateFunctionEventInvokeConfig",
            json!({"FunctionName": "taken"}),
            "MissingParameter",
        ),
        (
            "UpdateFunctionEventInvokeConfig",
            json!({"FunctionName": "taken", "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 1}]}}),
            "InvalidParameterValue.AsyncTriggerConfig",
        ),
    ];
    for (action, params, code) in checks {
        let answer = app.api(action, params.clone()).await;
        assert_eq!(
            answer.error_code(),
            code,
            "{action} {params}: {}",
            answer.page.body
        );
    }
    let f = app
        .api("GetFunction", json!({"FunctionName": "taken"}))
        .await;
    assert_eq!(
        (f.ok()["Timeout"].as_i64(), f.ok()["Handler"].as_str()),
        (Some(3), Some("index.main_handler"))
    );
    let config = app
        .api(
            "GetFunctionEventInvokeConfig",
            json!({"FunctionName": "taken"}),
        )
        .await;
    assert_eq!(
        config.ok()["AsyncTriggerConfig"]["MsgTTL"],
        21600,
        "nothing changed"
    );
}

#[tokio::test]
async fn signatures_are_checked_with_the_scf_codes() {
    let app = app_with_key().await;
    let call = |o: Options<'static>| {
        let app = &app;
        async move {
            app.api_with("ListFunctions", json!({}), &o)
                .await
                .error_code()
                .to_string()
        }
    };
    assert_eq!(
        call(Options {
            secret_id: "AKIDnobody",
            ..Options::default()
        })
        .await,
        "AuthFailure.SecretIdNotFound"
    );
    assert_eq!(
        call(Options {
            secret_key: "not-the-right-key",
            ..Options::default()
        })
        .await,
        "AuthFailure.SignatureFailure"
    );
    assert_eq!(
        call(Options {
            skew: -301,
            ..Options::default()
        })
        .await,
        "AuthFailure.SignatureExpire"
    );
    assert_eq!(
        call(Options {
            skew: 301,
            ..Options::default()
        })
        .await,
        "AuthFailure.SignatureExpire"
    );
    assert_eq!(
        call(Options {
            skew: -299,
            ..Options::default()
        })
        .await,
        ""
    );
    assert_eq!(
        call(Options {
            version: "2017-01-01",
            ..Options::default()
        })
        .await,
        "NoSuchVersion"
    );
    assert_eq!(
        call(Options {
            region: Some("eu-mars"),
            ..Options::default()
        })
        .await,
        "UnsupportedRegion"
    );
    // Both Host forms the official tools send, and GET, verify.
    assert_eq!(
        call(Options {
            host: "http://127.0.0.1:9000",
            ..Options::default()
        })
        .await,
        ""
    );
    assert_eq!(
        call(Options {
            get: true,
            ..Options::default()
        })
        .await,
        ""
    );
    assert_eq!(
        call(Options {
            unsigned_payload: true,
            ..Options::default()
        })
        .await,
        "AuthFailure.SignatureFailure",
        "unsigned payloads are off by default"
    );
    assert_eq!(
        call(Options {
            region: None,
            ..Options::default()
        })
        .await,
        "",
        "the default region"
    );

    let unknown = app.api("LaunchRocket", json!({})).await;
    assert_eq!(unknown.error_code(), "InvalidAction");
    // A real SCF action that is not served here is unsupported, not unknown.
    let unserved = app.api("PublishLayerVersion", json!({})).await;
    assert_eq!(unserved.error_code(), "UnsupportedOperation");
    assert!(unserved.error_message().contains("does not serve"));
    let nameless = app.api("GetFunction", json!({})).await;
    assert_eq!(
        nameless.error_code(),
        "InvalidParameter.FunctionNameOrResourceIdRequired"
    );

    // A tampered body no longer matches its signature.
    let mut signed = app.api("ListFunctions", json!({})).await;
    signed.ok();
    let tampered = Request::post("/")
        .header("Content-Type", "application/json")
        .header("Host", "127.0.0.1:9000")
        .header("X-TC-Action", "ListFunctions")
        .header("X-TC-Version", "2018-04-16")
        .header("X-TC-Timestamp", (app.state.clock.now_millis() / 1000).to_string())
        .header("Authorization", "TC3-HMAC-SHA256 Credential=AKIDtestsuite0000000000000000000000/2026-11-29/scf/tc3_request, SignedHeaders=content-type;host, Signature=00ff")
        .body(Body::from("{}"))
        .unwrap();
    signed.page = app.send(tampered).await;
    let json: Value = serde_json::from_str(&signed.page.body).unwrap();
    assert_eq!(
        json["Response"]["Error"]["Code"],
        "AuthFailure.SignatureFailure"
    );

    for auth in [
        None,
        Some("Basic dXNlcjpwYXNz"),
        Some("TC3-HMAC-SHA256 Credential=x"),
    ] {
        let mut req = Request::post("/")
            .header("Content-Type", "application/json")
            .header("X-TC-Action", "ListFunctions")
            .header("X-TC-Version", "2018-04-16")
            .header(
                "X-TC-Timestamp",
                (app.state.clock.now_millis() / 1000).to_string(),
            );
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let page = app.send(req.body(Body::from("{}")).unwrap()).await;
        let json: Value = serde_json::from_str(&page.body).unwrap();
        assert_eq!(
            json["Response"]["Error"]["Code"], "AuthFailure.InvalidAuthorization",
            "{auth:?}"
        );
    }
}

#[tokio::test]
async fn answers_are_exactly_json_with_a_fresh_request_id() {
    let app = app_with_key().await;
    let a = app.api("ListFunctions", json!({})).await;
    let b = app
        .api("GetFunction", json!({"FunctionName": "ghost"}))
        .await;
    assert_eq!(a.page.header("content-type"), "application/json");
    assert_eq!(b.page.header("content-type"), "application/json");
    assert_eq!(a.page.status.as_u16(), 200);
    assert_eq!(
        b.page.status.as_u16(),
        200,
        "errors are HTTP 200, as the cloud answers"
    );
    let ida = a.json["Response"]["RequestId"].as_str().unwrap();
    let idb = b.json["Response"]["RequestId"].as_str().unwrap();
    assert_eq!(ida.len(), 36);
    assert_ne!(ida, idb);
    // A browser at / still gets the console.
    assert_eq!(app.get("/").await.status.as_u16(), 303);
}

#[tokio::test]
async fn api_keys_are_managed_in_the_console_and_the_secret_is_shown_once() {
    let app = TestApp::new().await;
    let keys_url = format!("/scf/{REGION}/default/api-keys");
    let empty = app.get(&keys_url).await;
    assert_eq!(empty.text(".sidebar a[aria-current=page]"), "API Keys");
    assert!(empty.text(".empty-state").contains("No API keys yet"));

    let posted = app
        .post(&keys_url, &[("Description", "deploy script")])
        .await;
    assert_eq!(posted.status.as_u16(), 303);
    let created = app.follow(&posted).await;
    let secret_id = created.text("#new-secret-id");
    let secret_key = created.text("#new-secret-key");
    assert!(
        secret_id.starts_with("AKID") && secret_key.len() == 32,
        "{secret_id} {secret_key}"
    );
    // A reload shows the list: no second key, and the secret is not shown again.
    let listed = app.get(&keys_url).await;
    assert_eq!(listed.count("table.data tbody tr"), 1);
    assert_eq!(listed.count("#new-secret-key"), 0);
    assert!(listed.text("table.data").contains(&secret_id));
    assert!(listed.text("table.data").contains("deploy script"));
    assert!(
        !listed.body.contains(&secret_key),
        "the secret is never shown again"
    );

    let with_key = |id: &'static str, key: &'static str| Options {
        secret_id: id,
        secret_key: key,
        ..Options::default()
    };
    let id: &'static str = Box::leak(secret_id.clone().into_boxed_str());
    let key: &'static str = Box::leak(secret_key.into_boxed_str());
    assert!(
        app.api_with("ListFunctions", json!({}), &with_key(id, key))
            .await
            .json["Response"]["Error"]
            .is_null()
    );

    let disable = listed.attr("form[action$='/disable']", "action").unwrap();
    app.follow(&app.post(&disable, &[]).await).await;
    let refused = app
        .api_with("ListFunctions", json!({}), &with_key(id, key))
        .await;
    assert_eq!(refused.error_code(), "AuthFailure.SecretIdNotFound");
    let page = app.get(&keys_url).await;
    assert!(page.text("table.data").contains("Disabled"));
    let enable = page.attr("form[action$='/enable']", "action").unwrap();
    app.post(&enable, &[]).await;
    assert_eq!(
        app.api_with("ListFunctions", json!({}), &with_key(id, key))
            .await
            .error_code(),
        ""
    );

    let delete = format!("{keys_url}/{id}/delete");
    assert!(
        app.get(&delete)
            .await
            .text(".confirm")
            .contains("cannot be undone")
    );
    let done = app.follow(&app.post(&delete, &[]).await).await;
    assert_eq!(done.text(".banner-ok"), "Key deleted.");
    assert_eq!(
        app.api_with("ListFunctions", json!({}), &with_key(id, key))
            .await
            .error_code(),
        "AuthFailure.SecretIdNotFound"
    );

    let too_long = "d".repeat(101);
    let refused = app.post(&keys_url, &[("Description", &too_long)]).await;
    assert_eq!(refused.status.as_u16(), 422);
    assert!(refused.field_error("Description").contains("at most 100"));
}

#[tokio::test]
async fn a_refused_call_is_logged_under_the_request_id_it_answered_with() {
    let app = app_with_key().await;
    let (log, _logging) = Log::capture();
    let answer = app
        .api("GetFunction", json!({"FunctionName": "ghost"}))
        .await;
    assert_eq!(answer.error_code(), "ResourceNotFound.Function");
    let id = answer.json["Response"]["RequestId"].as_str().unwrap();
    assert_eq!(answer.page.header("x-request-id"), id);
    let logged = log.text();
    let line = logged
        .lines()
        .find(|l| l.contains("API call refused"))
        .unwrap_or_else(|| panic!("the refusal was not logged: {logged}"));
    assert!(line.contains(&format!("request_id={id}")), "{line}");
    assert_eq!(line.matches("request_id=").count(), 1, "{line}");
}

#[tokio::test]
async fn unsigned_payloads_are_refused_unless_enabled() {
    let mut app = app_with_key().await;
    let unsigned = Options {
        unsigned_payload: true,
        ..Options::default()
    };
    // Its body is not covered by the signature: a captured call could carry any other body.
    let refused = app
        .api_with("GetFunction", json!({"FunctionName": "ghost"}), &unsigned)
        .await;
    assert_eq!(refused.error_code(), "AuthFailure.SignatureFailure");
    let message = refused.json["Response"]["Error"]["Message"]
        .as_str()
        .unwrap();
    assert!(
        message.contains("Unsigned payloads") && message.contains("--allow-unsigned-payload"),
        "{message}"
    );
    // Signed, the same call reaches the action.
    assert_eq!(
        app.api("GetFunction", json!({"FunctionName": "ghost"}))
            .await
            .error_code(),
        "ResourceNotFound.Function"
    );

    app.state.allow_unsigned_payload = true;
    app.router = scf_console::app::router(app.state.clone());
    for get in [false, true] {
        let answer = app
            .api_with(
                "GetFunction",
                json!({"FunctionName": "ghost"}),
                &Options {
                    get,
                    unsigned_payload: true,
                    ..Options::default()
                },
            )
            .await;
        assert_eq!(
            answer.error_code(),
            "ResourceNotFound.Function",
            "get: {get}"
        );
    }
}

/// SCF's defaults and "off" values for features scf-console does not have are accepted and
/// change nothing, so a client that sends back what GetFunction answered works.
#[tokio::test]
async fn scf_defaults_and_off_values_are_accepted_and_read_modify_write_works() {
    let app = app_with_key().await;
    let off = json!({
        "VpcConfig": {"VpcId": "", "SubnetId": ""},
        "Role": "",
        "ClsLogsetId": "",
        "ClsTopicId": "",
        "InitTimeout": 65,
        "DnsCache": "FALSE",
        "DeadLetterConfig": {"Type": "", "Name": "", "FilterType": ""},
        "IntranetConfig": {"IpFixed": "DISABLE"},
        "PublicNetConfig": {"PublicNetStatus": "ENABLE", "EipConfig": {"EipStatus": "DISABLE"}},
        "CfsConfig": {"CfsInsList": []},
        "Layers": [],
        "Tags": [],
        "InstanceConcurrencyConfig": {"DynamicEnabled": "FALSE", "MaxConcurrency": 1},
        "ProtocolType": "",
        "AutoCreateClsTopic": "FALSE",
    });
    let mut create = json!({
        "FunctionName": "defaults",
        "Runtime": "Python3.9",
        "Handler": "index.main_handler",
        "Code": {"ZipFile": zip_base64(&[("index.py", "def main_handler(e, c):\n    return 1\n")])},
    });
    for (k, v) in off.as_object().unwrap() {
        create[k] = v.clone();
    }
    let created = app.api("CreateFunction", create).await;
    assert!(created.error_code().is_empty(), "{}", created.page.body);

    // Every field SCF answers is there, empty where the feature is not used.
    let got = app
        .api("GetFunction", json!({"FunctionName": "defaults"}))
        .await;
    let f = got.ok();
    assert_eq!(f["VpcConfig"]["VpcId"], "");
    assert_eq!(f["InitTimeout"].as_i64().unwrap() + 1, 66);
    assert_eq!(f["DnsCache"], "FALSE");
    assert_eq!(f["IntranetConfig"]["IpFixed"], "DISABLE");
    for field in [
        "VpcConfig",
        "Role",
        "ClsLogsetId",
        "ClsTopicId",
        "EipConfig",
        "AccessInfo",
        "DeadLetterConfig",
        "PublicNetConfig",
        "CfsConfig",
        "InitTimeout",
        "ImageConfig",
        "ProtocolType",
        "ProtocolParams",
        "InstanceConcurrencyConfig",
        "DnsCache",
        "IntranetConfig",
    ] {
        assert!(!f[field].is_null(), "{field} in {f}");
    }
    // Read, modify, write back: what GetFunction answered goes back as it is.
    let mut update = json!({"FunctionName": "defaults", "MemorySize": 256, "IgnoreSysLog": false, "L5Enable": f["L5Enable"]});
    for field in [
        "VpcConfig",
        "Role",
        "ClsLogsetId",
        "ClsTopicId",
        "DeadLetterConfig",
        "CfsConfig",
        "InitTimeout",
        "InstanceConcurrencyConfig",
        "DnsCache",
        "IntranetConfig",
        "Layers",
        "Description",
        "Timeout",
        "Environment",
    ] {
        update[field] = f[field].clone();
    }
    let updated = app.api("UpdateFunctionConfiguration", update).await;
    assert!(updated.error_code().is_empty(), "{}", updated.page.body);
    let after = app
        .api("GetFunction", json!({"FunctionName": "defaults"}))
        .await;
    assert_eq!(after.ok()["MemorySize"], 256);
    let listed = app.api("ListFunctions", json!({})).await;
    let item = &listed.ok()["Functions"][0];
    assert_eq!(item["TotalProvisionedConcurrencyMem"], 0);
    assert_eq!(item["ReservedConcurrencyMem"], 0);
}
