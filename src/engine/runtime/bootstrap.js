// scf-console's Node.js bootstrap. It loads the user's handler the way SCF does
// (handler "index.main_handler" is exports.main_handler of index.js, async or with a callback)
// and serves invocations one at a time: requests arrive as JSON lines on fd 3, answers leave as
// JSON lines on fd 4, so console output stays the handler's log.
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');

const END_OF_INVOCATION = '\x1eSCF-INVOCATION-END\x1e';
const [moduleName, functionName] = process.argv.slice(2);

function answer(obj) {
  fs.writeSync(4, JSON.stringify(obj === undefined ? null : obj) + '\n');
}

function errorOf(e) {
  if (e instanceof Error) {
    return { type: e.name || 'Error', message: e.message, stack: e.stack || '' };
  }
  return { type: 'Error', message: String(e), stack: '' };
}

let handler;
try {
  const mod = require(path.resolve(process.cwd(), moduleName));
  handler = mod[functionName];
  if (typeof handler !== 'function') {
    throw new Error(`module '${moduleName}' has no function '${functionName}' (check the handler setting)`);
  }
} catch (e) {
  console.error(e && e.stack ? e.stack : String(e));
  answer({ ready: false, error: errorOf(e) });
  process.exit(1);
}
answer({ ready: true });

function invoke(event, context) {
  return new Promise((resolve, reject) => {
    const callback = (err, data) => (err ? reject(err) : resolve(data));
    const returned = handler(event, context, callback);
    if (returned && typeof returned.then === 'function') {
      returned.then(resolve, reject);
    } else if (handler.length < 3) {
      resolve(returned);
    }
  });
}

const requests = readline.createInterface({ input: fs.createReadStream(null, { fd: 3 }) });
requests.on('line', async (line) => {
  const request = JSON.parse(line);
  let reply;
  try {
    const result = await invoke(request.event, request.context);
    reply = { ok: true, result: result === undefined ? null : result };
    JSON.stringify(reply);
  } catch (e) {
    console.error(e && e.stack ? e.stack : String(e));
    reply = { ok: false, error: errorOf(e) };
  }
  fs.writeSync(1, END_OF_INVOCATION + '\n');
  answer(reply);
});
requests.on('close', () => process.exit(0));
