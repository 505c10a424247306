"""The official Tencent Cloud Python SDK and tccli against a live scf-console, unchanged.

Run by `cargo test` (tests/it/sdk.rs) with the binary it built, or by hand:
    SCF_CONSOLE_BIN=target/debug/scf-console .venv/bin/python -m pytest tests/sdk
"""

import base64
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.scf.v20180416 import models, scf_client

SECRET_ID = "AKIDsdktest00000000000000000000000000"
SECRET_KEY = "sdk-test-secret-key-0123456789abc"
REGION = "ap-guangzhou"
HANDLER = "def main_handler(event, context):\n    return event\n"


@pytest.fixture(scope="module")
def server():
    """A fresh scf-console on a free port, with an API key from its configuration."""
    binary = os.environ.get("SCF_CONSOLE_BIN", "target/debug/scf-console")
    data = tempfile.mkdtemp(prefix="scf-sdk-")
    env = dict(os.environ, SCF_SECRET_ID=SECRET_ID, SCF_SECRET_KEY=SECRET_KEY, RUST_LOG="info")
    proc = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--data-dir", data],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    address = None
    for line in proc.stdout:
        match = re.search(r"listening on http://(\S+)", line)
        if match:
            address = match.group(1)
            break
    assert address, "the server did not start"
    yield address
    proc.terminate()
    proc.wait(timeout=20)


def client(address, key=SECRET_KEY, secret_id=SECRET_ID, method="POST"):
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=address, reqMethod=method))
    return scf_client.ScfClient(credential.Credential(secret_id, key), REGION, profile)


def request(model, **params):
    req = model()
    req.from_json_string(json.dumps(params))
    return req


def zip_base64(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    return base64.b64encode(buf.getvalue()).decode()


def error_code(call):
    with pytest.raises(TencentCloudSDKException) as info:
        call()
    assert info.value.message, "every error has a message"
    return info.value.code


def test_function_and_namespace_lifecycle(server):
    scf = client(server)
    scf.CreateNamespace(request(models.CreateNamespaceRequest, Namespace="sdk-ns", Description="made by the SDK"))
    namespaces = scf.ListNamespaces(models.ListNamespacesRequest())
    assert [n.Name for n in namespaces.Namespaces] == ["default", "sdk-ns"]

    scf.CreateFunction(
        request(
            models.CreateFunctionRequest,
            FunctionName="sdk-fn",
            Namespace="sdk-ns",
            Runtime="Python3.9",
            Handler="index.main_handler",
            Description="lifecycle",
            MemorySize=256,
            Timeout=3600,
            AsyncRunEnable="TRUE",
            TraceEnable="TRUE",
            Environment={"Variables": [{"Key": "STAGE", "Value": "sdk"}]},
            Code={"ZipFile": zip_base64({"index.py": HANDLER})},
        )
    )
    f = scf.GetFunction(request(models.GetFunctionRequest, FunctionName="sdk-fn", Namespace="sdk-ns"))
    assert (f.FunctionName, f.Runtime, f.Handler, f.MemorySize, f.Timeout) == (
        "sdk-fn",
        "Python3.9",
        "index.main_handler",
        256,
        3600,
    )
    assert (f.AsyncRunEnable, f.TraceEnable, f.Namespace, f.Status) == ("TRUE", "TRUE", "sdk-ns", "Active")
    assert [(v.Key, v.Value) for v in f.Environment.Variables] == [("STAGE", "sdk")]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", f.AddTime)

    listed = scf.ListFunctions(
        request(
            models.ListFunctionsRequest,
            Namespace="sdk-ns",
            Filters=[{"Name": "TraceEnable", "Values": ["TRUE"]}],
        )
    )
    assert listed.TotalCount == 1 and listed.Functions[0].FunctionName == "sdk-fn"
    # The same through GET, with the parameters flattened into the query string.
    via_get = client(server, method="GET").ListFunctions(
        request(models.ListFunctionsRequest, Namespace="sdk-ns", SearchKey="sdk", Limit=5)
    )
    assert [x.FunctionName for x in via_get.Functions] == ["sdk-fn"]

    scf.UpdateFunctionConfiguration(
        request(models.UpdateFunctionConfigurationRequest, FunctionName="sdk-fn", Namespace="sdk-ns", MemorySize=512)
    )
    scf.UpdateFunctionCode(
        request(
            models.UpdateFunctionCodeRequest,
            FunctionName="sdk-fn",
            Namespace="sdk-ns",
            Handler="app.run",
            ZipFile=zip_base64({"app.py": "def run(event, context):\n    return 2\n"}),
        )
    )
    f = scf.GetFunction(request(models.GetFunctionRequest, FunctionName="sdk-fn", Namespace="sdk-ns"))
    assert (f.MemorySize, f.Timeout, f.Handler) == (512, 3600, "app.run")

    scf.UpdateFunctionEventInvokeConfig(
        request(
            models.UpdateFunctionEventInvokeConfigRequest,
            FunctionName="sdk-fn",
            Namespace="sdk-ns",
            AsyncTriggerConfig={"RetryConfig": [{"RetryNum": 1}], "MsgTTL": 600},
        )
    )
    config = scf.GetFunctionEventInvokeConfig(
        request(models.GetFunctionEventInvokeConfigRequest, FunctionName="sdk-fn", Namespace="sdk-ns")
    ).AsyncTriggerConfig
    assert (config.RetryConfig[0].RetryNum, config.MsgTTL) == (1, 600)

    # TraceEnable is not in the SDK's model of this action: send it as raw parameters.
    scf.call_json("UpdateFunctionConfiguration", {"FunctionName": "sdk-fn", "Namespace": "sdk-ns", "TraceEnable": "FALSE"})
    f = scf.GetFunction(request(models.GetFunctionRequest, FunctionName="sdk-fn", Namespace="sdk-ns"))
    assert f.TraceEnable == "FALSE"

    assert error_code(lambda: scf.DeleteNamespace(request(models.DeleteNamespaceRequest, Namespace="sdk-ns"))) == (
        "FailedOperation.DeleteNamespace"
    )
    scf.DeleteFunction(request(models.DeleteFunctionRequest, FunctionName="sdk-fn", Namespace="sdk-ns"))
    scf.DeleteNamespace(request(models.DeleteNamespaceRequest, Namespace="sdk-ns"))
    assert error_code(
        lambda: scf.GetFunction(request(models.GetFunctionRequest, FunctionName="sdk-fn", Namespace="sdk-ns"))
    ) == "ResourceNotFound.Namespace"


def test_errors_carry_scf_codes(server):
    scf = client(server)
    code = {"ZipFile": zip_base64({"index.py": HANDLER})}
    scf.CreateFunction(request(models.CreateFunctionRequest, FunctionName="dup-fn", Code=code))

    def create(**params):
        return lambda: scf.CreateFunction(request(models.CreateFunctionRequest, Code=code, **params))

    assert error_code(create(FunctionName="dup-fn")) == "ResourceInUse.Function"
    assert error_code(create(FunctionName="9-bad")) == "InvalidParameterValue.FunctionName"
    assert error_code(create(FunctionName="mem-fn", MemorySize=100)) == "InvalidParameterValue.MemorySize"
    assert error_code(create(FunctionName="mem-fn", MemorySize=4096)) == "LimitExceeded.Memory"
    assert error_code(create(FunctionName="t-fn", Timeout=1000)) == "LimitExceeded.Timeout"
    assert error_code(create(FunctionName="r-fn", Runtime="Cobol85")) == "InvalidParameterValue.Runtime"
    assert error_code(create(FunctionName="tr-fn", TraceEnable="TRUE")) == "InvalidParameterValue.TraceEnable"
    assert error_code(lambda: scf.call_json("CreateFunction", {"FunctionName": "u-fn", "Colour": "blue"})) == (
        "UnknownParameter"
    )
    assert error_code(lambda: scf.call_json("CreateFunction", {"FunctionName": "c-fn"})) == "MissingParameter.Code"
    assert error_code(lambda: scf.call_json("NoSuchAction", {})) == "InvalidAction"
    assert error_code(
        lambda: scf.GetFunction(request(models.GetFunctionRequest, FunctionName="ghost"))
    ) == "ResourceNotFound.Function"
    assert error_code(
        lambda: client(server, key="wrong-secret-key-000000").ListFunctions(models.ListFunctionsRequest())
    ) == "AuthFailure.SignatureFailure"
    assert error_code(
        lambda: client(server, secret_id="AKIDnobody").ListFunctions(models.ListFunctionsRequest())
    ) == "AuthFailure.SecretIdNotFound"
    names = [f.FunctionName for f in scf.ListFunctions(models.ListFunctionsRequest()).Functions]
    assert names == ["dup-fn"], "refused calls wrote nothing"


def tccli(server, *args):
    env = dict(
        os.environ,
        TENCENTCLOUD_SECRET_ID=SECRET_ID,
        TENCENTCLOUD_SECRET_KEY=SECRET_KEY,
        TENCENTCLOUD_REGION=REGION,
    )
    exe = os.path.join(os.path.dirname(sys.executable), "tccli")
    return subprocess.run(
        [exe, "scf", *args, "--endpoint", f"http://{server}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_tccli(server):
    done = tccli(server, "CreateNamespace", "--Namespace", "cli-ns", "--Description", "from tccli")
    assert done.returncode == 0, done.stderr + done.stdout
    done = tccli(
        server,
        "CreateFunction",
        "--FunctionName",
        "cli-fn",
        "--Namespace",
        "cli-ns",
        "--Runtime",
        "Python3.10",
        "--Code",
        json.dumps({"ZipFile": zip_base64({"index.py": HANDLER})}),
        "--AsyncRunEnable",
        "TRUE",
    )
    assert done.returncode == 0, done.stderr + done.stdout
    listed = tccli(server, "ListFunctions", "--Namespace", "cli-ns")
    assert listed.returncode == 0, listed.stderr
    answer = json.loads(listed.stdout)
    assert answer["TotalCount"] == 1
    assert answer["Functions"][0]["FunctionName"] == "cli-fn"
    assert answer["Functions"][0]["AsyncRunEnable"] == "TRUE"
    missing = tccli(server, "GetFunction", "--FunctionName", "ghost")
    assert "ResourceNotFound.Function" in missing.stdout + missing.stderr
    tccli(server, "DeleteFunction", "--FunctionName", "cli-fn", "--Namespace", "cli-ns")
    done = tccli(server, "DeleteNamespace", "--Namespace", "cli-ns")
    assert done.returncode == 0, done.stderr + done.stdout


def test_async_events_with_status_trace(server):
    import time

    scf = client(server)
    code = {"ZipFile": zip_base64({"index.py": "def main_handler(event, context):\n    print('got', event)\n    return event['n'] * 2\n"})}
    scf.CreateFunction(
        request(
            models.CreateFunctionRequest, FunctionName="sdk-async", Runtime="Python3.10", Code=code,
            AsyncRunEnable="TRUE", TraceEnable="TRUE",
        )
    )
    answer = scf.Invoke(
        request(models.InvokeRequest, FunctionName="sdk-async", InvocationType="Event", ClientContext=json.dumps({"n": 21}))
    )
    request_id = answer.Result.FunctionRequestId
    assert len(request_id) == 36
    deadline = time.time() + 30
    while True:
        status = scf.GetAsyncEventStatus(request(models.GetAsyncEventStatusRequest, InvokeRequestId=request_id)).Result
        if status.Status != "RUNNING" or time.time() > deadline:
            break
        time.sleep(0.05)
    assert (status.Status, status.StatusCode, status.InvokeRequestId) == ("FINISHED", 200, request_id)
    events = scf.ListAsyncEvents(request(models.ListAsyncEventsRequest, FunctionName="sdk-async", Status=["FINISHED"]))
    assert events.TotalCount == 1
    event = events.EventList[0]
    assert (event.InvokeRequestId, event.InvokeType, event.Qualifier, event.Status) == (request_id, "API", "$LATEST", "FINISHED")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", event.StartTime) and event.EndTime
    assert error_code(
        lambda: scf.TerminateAsyncEvent(
            request(models.TerminateAsyncEventRequest, FunctionName="sdk-async", InvokeRequestId=request_id)
        )
    ) == "FailedOperation.AsyncEventStatus"
    # A synchronous call of a function without async execution answers with its result.
    scf.CreateFunction(request(models.CreateFunctionRequest, FunctionName="sdk-sync", Runtime="Python3.10", Code=code))
    result = scf.Invoke(request(models.InvokeRequest, FunctionName="sdk-sync", ClientContext=json.dumps({"n": 4}))).Result
    assert (result.RetMsg, result.InvokeResult) == ("8", 0)
    assert "got {'n': 4}" in result.Log


def test_reserved_concurrency_and_public_network(server):
    """Reservations and the network setting through the SDK's own models, both methods."""
    for method in ("POST", "GET"):
        scf = client(server, method=method)
        name = f"reserved-{method.lower()}"
        scf.CreateFunction(request(
            models.CreateFunctionRequest, FunctionName=name,
            Code={"ZipFile": zip_base64({"index.py": HANDLER})},
            PublicNetConfig={"PublicNetStatus": "DISABLE", "EipConfig": {"EipStatus": "DISABLE"}},
        ))
        got = scf.GetFunction(request(models.GetFunctionRequest, FunctionName=name))
        assert got.PublicNetConfig.PublicNetStatus == "DISABLE"
        assert got.PublicNetConfig.EipConfig.EipStatus == "DISABLE"

        none = scf.GetReservedConcurrencyConfig(request(models.GetReservedConcurrencyConfigRequest, FunctionName=name))
        assert none.ReservedMem is None
        scf.PutReservedConcurrencyConfig(request(
            models.PutReservedConcurrencyConfigRequest, FunctionName=name, ReservedConcurrencyMem=256,
        ))
        got = scf.GetReservedConcurrencyConfig(request(models.GetReservedConcurrencyConfigRequest, FunctionName=name))
        assert got.ReservedMem == 256
        listed = scf.ListFunctions(request(models.ListFunctionsRequest, SearchKey=name)).Functions
        assert [f.ReservedConcurrencyMem for f in listed] == [256]
        assert error_code(lambda: scf.PutReservedConcurrencyConfig(request(
            models.PutReservedConcurrencyConfigRequest, FunctionName=name, ReservedConcurrencyMem=10**9,
        ))) == "LimitExceeded.FunctionReservedConcurrencyMemory"
        assert error_code(lambda: scf.PutReservedConcurrencyConfig(request(
            models.PutReservedConcurrencyConfigRequest, FunctionName="ghost", ReservedConcurrencyMem=128,
        ))) == "ResourceNotFound.Function"
        scf.DeleteReservedConcurrencyConfig(request(models.DeleteReservedConcurrencyConfigRequest, FunctionName=name))
        got = scf.GetReservedConcurrencyConfig(request(models.GetReservedConcurrencyConfigRequest, FunctionName=name))
        assert got.ReservedMem is None
        scf.DeleteFunction(request(models.DeleteFunctionRequest, FunctionName=name))


def fields_of(model):
    """The fields an SDK model defines (its answer's RequestId aside)."""
    return sorted(k[1:] for k in vars(model) if k != "_RequestId")


def test_answers_fill_every_field_the_sdk_defines(server):
    c = client(server)
    c.CreateFunction(request(
        models.CreateFunctionRequest, FunctionName="complete", Runtime="Python3.9",
        Handler="index.main_handler", AsyncRunEnable="TRUE", TraceEnable="TRUE",
        Code={"ZipFile": zip_base64({"index.py": HANDLER})},
    ))
    got = c.GetFunction(request(models.GetFunctionRequest, FunctionName="complete"))
    assert [f for f in fields_of(got) if getattr(got, f) is None] == []
    # What typical client code does with them.
    assert got.VpcConfig.VpcId == ""
    assert got.InitTimeout + 1 == 66
    assert got.IntranetConfig.IpFixed == "DISABLE"
    listed = c.ListFunctions(request(models.ListFunctionsRequest))
    item = next(f for f in listed.Functions if f.FunctionName == "complete")
    assert [f for f in fields_of(item) if getattr(item, f) is None] == []
    assert item.TotalProvisionedConcurrencyMem == 0

    # Read-modify-write: every field the update takes, copied from what GetFunction answered.
    update = models.UpdateFunctionConfigurationRequest()
    for field in fields_of(update):
        if getattr(got, field, None) is not None:
            setattr(update, field, getattr(got, field))
    update.MemorySize = 256
    c.UpdateFunctionConfiguration(update)
    assert c.GetFunction(request(models.GetFunctionRequest, FunctionName="complete")).MemorySize == 256

    # The other answers the SDK reads, whole.
    event = c.Invoke(request(
        models.InvokeRequest, FunctionName="complete", InvocationType="Event", ClientContext="{}",
    )).Result.FunctionRequestId
    status = c.GetAsyncEventStatus(request(models.GetAsyncEventStatusRequest, InvokeRequestId=event))
    assert [f for f in fields_of(status.Result) if getattr(status.Result, f) is None] == []
    events = c.ListAsyncEvents(request(models.ListAsyncEventsRequest, FunctionName="complete"))
    assert [f for f in fields_of(events.EventList[0]) if getattr(events.EventList[0], f) is None] == []
    config = c.GetFunctionEventInvokeConfig(request(models.GetFunctionEventInvokeConfigRequest, FunctionName="complete"))
    assert config.AsyncTriggerConfig.MsgTTL > 0
    namespaces = c.ListNamespaces(request(models.ListNamespacesRequest))
    assert [f for f in fields_of(namespaces.Namespaces[0]) if getattr(namespaces.Namespaces[0], f) is None] == []


def test_node_sdk_over_every_action(server):
    """The official Node.js SDK (tencentcloud-sdk-nodejs-scf) unchanged: it names the service
    after the endpoint's first label and signs the host without its port."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    modules = os.path.join(root, "target", "npm", "node_modules")
    if not os.path.isdir(os.path.join(modules, "tencentcloud-sdk-nodejs-scf")):
        why = "the Node.js SDK is missing: npm install --prefix target/npm tencentcloud-sdk-nodejs-scf"
        assert not os.environ.get("CI"), why
        pytest.skip(why)
    run = subprocess.run(
        ["node", os.path.join(root, "tests", "sdk", "node_sdk.js"), server, SECRET_ID, SECRET_KEY],
        env=dict(os.environ, NODE_PATH=modules),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "all actions ok" in run.stdout


def test_request_status_and_account(server):
    """GetRequestStatus gives an event's outcome; GetAccount the region's usage and limits."""
    import time
    c = client(server)
    c.CreateFunction(request(
        models.CreateFunctionRequest, FunctionName="outcome", Runtime="Python3.9",
        Handler="index.main_handler", AsyncRunEnable="TRUE", TraceEnable="TRUE",
        Code={"ZipFile": zip_base64({"index.py": "def main_handler(event, context):\n    return {'twice': event['n'] * 2}\n"})},
    ))
    c.PutReservedConcurrencyConfig(request(models.PutReservedConcurrencyConfigRequest, FunctionName="outcome", ReservedConcurrencyMem=256))
    event = c.Invoke(request(
        models.InvokeRequest, FunctionName="outcome", InvocationType="Event", ClientContext='{"n": 21}',
    )).Result.FunctionRequestId
    for _ in range(200):
        status = c.GetRequestStatus(request(models.GetRequestStatusRequest, FunctionName="outcome", FunctionRequestId=event))
        if status.Data and status.Data[0].RetCode != 1:
            break
        time.sleep(0.05)
    assert status.TotalCount == 1
    item = status.Data[0]
    assert [f for f in fields_of(item) if getattr(item, f) is None] == []
    assert (item.RetCode, json.loads(item.RetMsg), item.RetryNum) == (0, {"twice": 42}, 0)
    assert item.RequestId == event and item.FunctionName == "outcome"
    missing = c.GetRequestStatus(request(models.GetRequestStatusRequest, FunctionName="outcome", FunctionRequestId="00000000-0000-4000-8000-000000000000"))
    assert (missing.TotalCount, missing.Data) == (0, [])

    account = c.GetAccount(models.GetAccountRequest())
    usage, limit = account.AccountUsage, account.AccountLimit
    assert [f for f in fields_of(usage) if getattr(usage, f) is None] == []
    assert [f for f in fields_of(limit) if getattr(limit, f) is None] == []
    assert usage.TotalAllocatedConcurrencyMem >= 256
    default = next(n for n in usage.Namespace if n.Namespace == "default")
    assert "outcome" in default.Functions
    assert [f for f in fields_of(default) if getattr(default, f) is None] == []
    limits = next(n for n in limit.Namespace if n.Namespace == "default")
    assert [f for f in fields_of(limits) if getattr(limits, f) is None] == []
    assert (limits.RetryNumLimit, limits.MinMsgTTL, limits.MaxMsgTTL) == (2, 60, 21600)


SERVED = [
    "CreateFunction", "GetFunction", "ListFunctions", "DeleteFunction", "UpdateFunctionConfiguration",
    "UpdateFunctionCode", "GetFunctionEventInvokeConfig", "UpdateFunctionEventInvokeConfig",
    "PutReservedConcurrencyConfig", "GetReservedConcurrencyConfig", "DeleteReservedConcurrencyConfig",
    "Invoke", "ListAsyncEvents", "GetAsyncEventStatus", "GetRequestStatus", "GetAccount",
    "TerminateAsyncEvent", "ListNamespaces", "CreateNamespace", "DeleteNamespace",
]

# API 3.0's common error codes, which any action may answer.
COMMON_CODES = {
    "AuthFailure.InvalidAuthorization", "AuthFailure.SecretIdNotFound", "AuthFailure.SignatureExpire",
    "AuthFailure.SignatureFailure", "FailedOperation", "InternalError", "InvalidAction", "InvalidParameter",
    "InvalidParameterValue", "LimitExceeded", "MissingParameter", "NoSuchVersion", "RequestLimitExceeded",
    "RequestSizeLimitExceeded", "ResourceInUse", "ResourceNotFound", "ResourceUnavailable",
    "UnauthorizedOperation", "UnknownParameter", "UnsupportedOperation", "UnsupportedRegion",
}


def documented_codes():
    """Each action's own error codes, as the server's table keeps them from the SDK's docs."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    codes, action = {}, None
    with open(os.path.join(root, "src", "scf", "error_codes.txt")) as table:
        for line in map(str.strip, table):
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                action = line.strip("[]")
                codes[action] = set()
            else:
                codes[action].add(line)
    return codes


def test_every_refusal_answers_a_code_its_action_documents(server):
    """Client code branches on the codes of each action's documented list: every refusal below
    answers one of them (or a common code), and the one SCF answers where it names one."""
    c = client(server)
    code = {"ZipFile": zip_base64({"index.py": HANDLER})}
    c.CreateFunction(request(models.CreateFunctionRequest, FunctionName="coded", Code=code, AsyncRunEnable="TRUE", TraceEnable="TRUE"))
    c.CreateFunction(request(
        models.CreateFunctionRequest, FunctionName="untraced", Code=code, AsyncRunEnable="TRUE", TraceEnable="FALSE",
    ))
    ghost = "00000000-0000-4000-8000-000000000000"
    cases = [
        ("CreateFunction", {"FunctionName": "coded", "Code": code}, "ResourceInUse.Function"),
        ("CreateFunction", {"FunctionName": "x", "Code": code}, "InvalidParameterValue.FunctionName"),
        ("CreateFunction", {"FunctionName": "nocode"}, "MissingParameter.Code"),
        ("CreateFunction", {"FunctionName": "m", "Code": code, "MemorySize": 10**15}, None),
        ("GetFunction", {}, "InvalidParameter.FunctionNameOrResourceIdRequired"),
        ("GetFunction", {"FunctionName": "coded", "Qualifier": "3"}, "ResourceNotFound.Version"),
        ("GetFunction", {"FunctionName": "ghost"}, "ResourceNotFound.Function"),
        ("ListFunctions", {"Order": "SIDEWAYS"}, None),
        ("ListFunctions", {"Limit": 10**15}, None),
        ("ListFunctions", {"Orderby": "Colour"}, "InvalidParameterValue"),
        ("DeleteFunction", {"FunctionName": "coded", "Qualifier": "3"}, "ResourceNotFound.Qualifier"),
        ("DeleteFunction", {"FunctionName": "ghost"}, "ResourceNotFound.Function"),
        ("UpdateFunctionConfiguration", {"FunctionName": "coded", "Timeout": 0}, None),
        ("UpdateFunctionConfiguration", {"FunctionName": "coded", "VpcConfig": {"VpcId": "vpc-1"}}, None),
        ("UpdateFunctionCode", {"FunctionName": "coded"}, "InvalidParameterValue.Code"),
        ("UpdateFunctionCode", {"FunctionName": "coded", "ZipFile": "not base64!"}, None),
        ("GetFunctionEventInvokeConfig", {"FunctionName": "ghost"}, "ResourceNotFound.Function"),
        ("UpdateFunctionEventInvokeConfig", {"FunctionName": "coded", "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 1}]}},
         "InvalidParameterValue.AsyncTriggerConfig"),
        ("UpdateFunctionEventInvokeConfig",
         {"FunctionName": "coded", "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 99}], "MsgTTL": 60}},
         "LimitExceeded.RetryNum"),
        ("PutReservedConcurrencyConfig", {"FunctionName": "coded", "ReservedConcurrencyMem": 10**15}, None),
        ("GetReservedConcurrencyConfig", {"FunctionName": "ghost"}, "ResourceNotFound.Function"),
        ("DeleteReservedConcurrencyConfig", {"FunctionName": "ghost"}, "ResourceNotFound.Function"),
        ("Invoke", {"FunctionName": "coded", "InvocationType": "Sometimes"}, "InvalidParameterValue"),
        ("Invoke", {"FunctionName": "coded", "ClientContext": "{not json"}, None),
        ("Invoke", {"FunctionName": "ghost"}, "ResourceNotFound.Function"),
        ("ListAsyncEvents", {"FunctionName": "coded", "Status": ["SLEEPING"]}, "InvalidParameterValue.Status"),
        ("ListAsyncEvents", {"FunctionName": "untraced"}, None),
        ("ListAsyncEvents", {"FunctionName": "coded", "Qualifier": "3"}, "ResourceNotFound.Version"),
        ("GetAsyncEventStatus", {"InvokeRequestId": ghost}, "ResourceNotFound.AsyncEvent"),
        ("GetRequestStatus", {"FunctionName": "coded", "FunctionRequestId": ghost, "StartTime": "yesterday",
                              "EndTime": "today"}, None),
        ("GetRequestStatus", {"FunctionName": "ghost", "FunctionRequestId": ghost}, "ResourceNotFound.Function"),
        ("GetAccount", {"Colour": "blue"}, "UnknownParameter"),
        ("TerminateAsyncEvent", {"FunctionName": "coded", "InvokeRequestId": ghost}, "ResourceNotFound.AsyncEvent"),
        ("ListNamespaces", {"Limit": -1}, None),
        ("CreateNamespace", {"Namespace": "default"}, "InvalidParameterValue.DefaultNamespace"),
        ("CreateNamespace", {"Namespace": "bad name!"}, None),
        ("DeleteNamespace", {"Namespace": "ghost-ns"}, "ResourceNotFound.Namespace"),
    ]
    documented = documented_codes()
    assert sorted(documented) == sorted(SERVED)
    answered = []
    for action, params, expected in cases:
        got = error_code(lambda: c.call_json(action, params))
        answered.append((action, got))
        assert got in documented[action] | COMMON_CODES, f"{action} {params} answered {got}, not in its list"
        if expected:
            assert got == expected, f"{action} {params}"
    assert {a for a, _ in answered} == set(SERVED), "every served action is refused at least once"


def sdk_placeholder(doc_type):
    """A value of the type an SDK request model documents for a field."""
    if doc_type.startswith(":class:"):
        return {}
    if doc_type.startswith("list of "):
        return [sdk_placeholder(doc_type[len("list of "):])]
    return {"str": "x", "int": 1, "bool": False, "float": 1.0}.get(doc_type, {})


def test_every_request_field_the_sdk_defines_is_known(server):
    """Each parameter of each served action's SDK request model is taken, or refused for its
    value (UnsupportedOperation where the feature is missing), never UnknownParameter."""
    c = client(server)
    unknown = []
    for action in SERVED:
        model = getattr(models, action + "Request")
        # The docstring names each field's type (":type Code: :class:`...models.Code`").
        types = dict(re.findall(r":type (\w+): (.+)", model.__init__.__doc__ or ""))
        for field in fields_of(model()):
            value = sdk_placeholder(types.get(field, "str"))
            try:
                c.call_json(action, {field: value})
            except TencentCloudSDKException as e:
                if e.code == "UnknownParameter" or e.code == "InvalidParameter" and "unknown" in e.message.lower():
                    unknown.append(f"{action}.{field}: {e.message}")
    assert unknown == []
