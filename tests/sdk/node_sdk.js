// The official Tencent Cloud Node.js SDK (tencentcloud-sdk-nodejs-scf, from npm) over every
// action scf-console serves, unchanged. Run by test_sdk.py with the server's address and key:
//   node tests/sdk/node_sdk.js 127.0.0.1:PORT SECRET_ID SECRET_KEY
// Prints one line per action and exits non-zero on the first surprise.
"use strict";
const assert = require("assert");
const zlib = require("zlib");
const tencentcloud = require("tencentcloud-sdk-nodejs-scf");

const [address, secretId, secretKey] = process.argv.slice(2);
const Client = tencentcloud.scf.v20180416.Client;
const scf = new Client({
  credential: { secretId, secretKey },
  region: "ap-guangzhou",
  profile: { httpProfile: { endpoint: address, protocol: "http://" } },
});

// A zip with one stored (uncompressed) file, built by hand: no zip package from npm needed.
function zipOf(name, text) {
  const data = Buffer.from(text);
  const crc = zlib.crc32(data);
  const nameBuf = Buffer.from(name);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(20, 4); local.writeUInt16LE(0, 6);
  local.writeUInt16LE(0, 8); local.writeUInt32LE(0, 10); local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(data.length, 18); local.writeUInt32LE(data.length, 22);
  local.writeUInt16LE(nameBuf.length, 26); local.writeUInt16LE(0, 28);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0); central.writeUInt16LE(20, 4); central.writeUInt16LE(20, 6);
  central.writeUInt16LE(0, 8); central.writeUInt16LE(0, 10); central.writeUInt32LE(0, 12);
  central.writeUInt32LE(crc, 16); central.writeUInt32LE(data.length, 20); central.writeUInt32LE(data.length, 24);
  central.writeUInt16LE(nameBuf.length, 28); central.writeUInt32LE(0, 30); central.writeUInt32LE(0, 34);
  central.writeUInt32LE(0, 38); central.writeUInt32LE(0, 42);
  const offset = local.length + nameBuf.length + data.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(1, 8); end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + nameBuf.length, 12); end.writeUInt32LE(offset, 16);
  return Buffer.concat([local, nameBuf, data, central, nameBuf, end]).toString("base64");
}

async function refused(call, code) {
  try {
    await call();
  } catch (e) {
    assert.strictEqual(e.code, code, `${e.code}: ${e.message}`);
    return;
  }
  assert.fail(`expected ${code}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

(async () => {
  const name = "node-sdk";
  const handler = "def main_handler(event, context):\n    return {'got': event}\n";
  await scf.CreateNamespace({ Namespace: "node-team", Description: "made by the Node.js SDK" });
  console.log("CreateNamespace ok");
  const namespaces = await scf.ListNamespaces({});
  assert.ok(namespaces.Namespaces.some((n) => n.Name === "node-team"));
  console.log("ListNamespaces ok");
  await scf.CreateFunction({
    FunctionName: name, Runtime: "Python3.10", Handler: "index.main_handler",
    AsyncRunEnable: "TRUE", TraceEnable: "TRUE", Code: { ZipFile: zipOf("index.py", handler) },
  });
  console.log("CreateFunction ok");
  const f = await scf.GetFunction({ FunctionName: name });
  assert.strictEqual(f.VpcConfig.VpcId, "");
  assert.strictEqual(f.TraceEnable, "TRUE");
  console.log("GetFunction ok");
  const listed = await scf.ListFunctions({ SearchKey: "node" });
  assert.strictEqual(listed.Functions[0].FunctionName, name);
  console.log("ListFunctions ok");
  await scf.UpdateFunctionConfiguration({
    FunctionName: name, MemorySize: 256, VpcConfig: f.VpcConfig, DnsCache: f.DnsCache,
    InitTimeout: f.InitTimeout,
  });
  console.log("UpdateFunctionConfiguration ok");
  await scf.UpdateFunctionCode({ FunctionName: name, Handler: "index.main_handler", Code: { ZipFile: zipOf("index.py", handler) } });
  console.log("UpdateFunctionCode ok");
  await scf.UpdateFunctionEventInvokeConfig({
    FunctionName: name, AsyncTriggerConfig: { RetryConfig: [{ RetryNum: 1 }], MsgTTL: 600 },
  });
  console.log("UpdateFunctionEventInvokeConfig ok");
  const config = await scf.GetFunctionEventInvokeConfig({ FunctionName: name });
  assert.strictEqual(config.AsyncTriggerConfig.MsgTTL, 600);
  console.log("GetFunctionEventInvokeConfig ok");
  const invoked = await scf.Invoke({ FunctionName: name, InvocationType: "Event", ClientContext: JSON.stringify({ n: 1 }) });
  const id = invoked.Result.FunctionRequestId;
  assert.strictEqual(id.length, 36);
  console.log("Invoke ok");
  let status;
  for (let i = 0; i < 200; i++) {
    status = await scf.GetAsyncEventStatus({ InvokeRequestId: id });
    if (status.Result.Status !== "RUNNING") break;
    await sleep(50);
  }
  assert.strictEqual(status.Result.Status, "FINISHED");
  console.log("GetAsyncEventStatus ok");
  const outcome = await scf.GetRequestStatus({ FunctionName: name, FunctionRequestId: id });
  assert.strictEqual(outcome.Data[0].RetCode, 0);
  assert.deepStrictEqual(JSON.parse(outcome.Data[0].RetMsg), { got: { n: 1 } });
  console.log("GetRequestStatus ok");
  const events = await scf.ListAsyncEvents({ FunctionName: name });
  assert.strictEqual(events.EventList[0].InvokeRequestId, id);
  console.log("ListAsyncEvents ok");
  await refused(() => scf.TerminateAsyncEvent({ FunctionName: name, InvokeRequestId: id }), "FailedOperation.AsyncEventStatus");
  console.log("TerminateAsyncEvent ok");
  await scf.PutReservedConcurrencyConfig({ FunctionName: name, ReservedConcurrencyMem: 256 });
  const reserved = await scf.GetReservedConcurrencyConfig({ FunctionName: name });
  assert.strictEqual(reserved.ReservedMem, 256);
  await scf.DeleteReservedConcurrencyConfig({ FunctionName: name });
  console.log("ReservedConcurrencyConfig ok");
  const account = await scf.GetAccount({});
  assert.ok(account.AccountUsage.Namespace.some((n) => n.Functions.includes(name)));
  console.log("GetAccount ok");
  await refused(() => scf.GetFunction({ FunctionName: "no-such-function" }), "ResourceNotFound.Function");
  await refused(() => scf.Invoke({ FunctionName: name, InvocationType: "Sometimes" }), "InvalidParameterValue");
  await refused(() => scf.DeleteFunction({ FunctionName: name, Qualifier: "3" }), "ResourceNotFound.Qualifier");
  await refused(() => scf.CreateNamespace({ Namespace: "default" }), "InvalidParameterValue.DefaultNamespace");
  console.log("refusals ok");
  await scf.DeleteFunction({ FunctionName: name });
  // Its events' status stays readable after it is gone, as on SCF.
  const kept = await scf.GetAsyncEventStatus({ InvokeRequestId: id });
  assert.strictEqual(kept.Result.Status, "FINISHED");
  console.log("DeleteFunction ok");
  await scf.DeleteNamespace({ Namespace: "node-team" });
  console.log("DeleteNamespace ok");
  console.log("all actions ok");
})().catch((e) => {
  console.error("FAILED:", e && (e.code || ""), e && e.message);
  process.exit(1);
});
