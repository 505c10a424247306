// scf-console's Node.js bootstrap. It loads the user's handler the way SCF does
// (handler "index.main_handler" is exports.main_handler of index.js, async or with a callback)
// and serves invocations one at a time: requests arrive as JSON lines on fd 3, answers leave as
// JSON lines on fd 4, so console output stays the handler's log.
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');

// Markers on lines of their own frame each invocation's output, so that what is printed between
// invocations (timers, unawaited promises) is not taken for the next invocation's log. The
// leading newline ends a line the handler left unterminated.
const START_OF_INVOCATION = '\n\x1eSCF-INVOCATION-START\x1e\n';
const END_OF_INVOCATION = '\n\x1eSCF-INVOCATION-END\x1e\n';
const [moduleName, functionName] = process.argv.slice(2);

function answer(obj) {
  fs.writeSync(4, JSON.stringify(obj === undefined ? null : obj) + '\n');
}

// Where SCF puts a function's code: stack traces show the user's files there, not this
// server's runtime folder, and leave out the platform's own frames.
const USER_CODE = '/var/user';
const codeDir = process.cwd() + path.sep;

function userStack(e) {
  const stack = e && e.stack ? String(e.stack) : String(e);
  return stack
    .split('\n')
    .filter((line) => !line.includes(__filename))
    .map((line) => line.split(codeDir).join(USER_CODE + '/'))
    .join('\n');
}

function errorOf(e) {
  if (e instanceof Error) {
    return { type: e.name || 'Error', message: e.message, stack: userStack(e) };
  }
  return { type: 'Error', message: String(e), stack: '' };
}

// Node's own write, kept before the handler loads: a handler that replaces
// process.stdout.write (to add timestamps, say) must not swallow a marker or its callback.
const writeOut = process.stdout.write.bind(process.stdout);

let handler;
// The handler's file or function is not there (SCF's 437), as opposed to code that fails.
let missing = false;
const modulePath = path.resolve(process.cwd(), moduleName);
try {
  const mod = require(modulePath);
  handler = mod[functionName];
  if (typeof handler !== 'function') {
    missing = true;
    throw new Error(`module '${moduleName}' has no function '${functionName}' (check the handler setting)`);
  }
} catch (e) {
  if (e && e.code === 'MODULE_NOT_FOUND' && String(e.message).includes(`'${modulePath}'`)) missing = true;
  console.error(userStack(e));
  answer({ ready: false, error: errorOf(e), missing });
  process.exit(1);
}
// Markers go through process.stdout like the handler's own output, never straight to fd 1:
// once the handler has used process.stdout, Node has made the pipe non-blocking and may still
// hold output it could not write yet, so a direct write would jump that queue or fail with
// EAGAIN (and a failed marker left the instance hanging). The answer leaves only once the
// marker, and so everything printed before it, has reached the pipe.
function mark(marker, then) {
  writeOut(marker, () => then());
}

// What loading printed goes to the first invocation's log.
mark(END_OF_INVOCATION, () => answer({ ready: true }));

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
  writeOut(START_OF_INVOCATION);
  const started = process.hrtime.bigint();
  let reply;
  try {
    const result = await invoke(request.event, request.context);
    reply = { ok: true, result: result === undefined ? null : result };
    JSON.stringify(reply);
  } catch (e) {
    console.error(userStack(e));
    reply = { ok: false, error: errorOf(e) };
  }
  // The handler's own run time: the server judges a late-seen answer by it.
  reply.ran_ms = Number(process.hrtime.bigint() - started) / 1e6;
  mark(END_OF_INVOCATION, () => answer(reply));
});
requests.on('close', () => process.exit(0));
