# scf-console's Python bootstrap. It loads the user's handler the way SCF does
# (handler "index.main_handler" calls main_handler(event, context) in index.py) and serves
# invocations one at a time: requests arrive as JSON lines on fd 3, answers leave as JSON lines
# on fd 4, so whatever the handler prints on stdout/stderr stays its log.
import importlib
import json
import os
import sys
import time

# Markers on lines of their own frame each invocation's output, so that what a handler's
# threads print between invocations is not taken for the next invocation's log. The leading
# newline ends a line the handler left unterminated.
START_OF_INVOCATION = "\n\x1eSCF-INVOCATION-START\x1e\n"
END_OF_INVOCATION = "\n\x1eSCF-INVOCATION-END\x1e\n"


def mark(marker):
    # Straight to the descriptor, after what the handler printed: a handler that replaced
    # sys.stdout must not lose its invocations' framing.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    data = marker.encode()
    while data:
        try:
            data = data[os.write(1, data):]
        except BlockingIOError:
            # The handler made the pipe non-blocking and the server has not read it yet.
            import select

            select.select([], [1], [])


# Where SCF puts a function's code: stack traces show the user's files there, not this
# server's runtime folder, and leave out the platform's own frames.
USER_CODE = "/var/user"


def user_stack(exc):
    import traceback  # only when something failed: it costs start-up time otherwise

    code_dir = os.getcwd() + os.sep
    ours = {os.path.abspath(__file__)}
    ours.add(os.path.join(os.path.dirname(os.path.abspath(__file__)), "zygote.py"))

    def clean(te, seen):
        if te is None or id(te) in seen:
            return
        seen.add(id(te))
        kept = []
        for frame in te.stack:
            if os.path.abspath(frame.filename) in ours or frame.filename.startswith("<frozen "):
                continue
            if frame.filename.startswith(code_dir):
                frame.filename = USER_CODE + "/" + frame.filename[len(code_dir):]
            kept.append(frame)
        te.stack = traceback.StackSummary.from_list(kept)
        clean(te.__cause__, seen)
        clean(te.__context__, seen)

    te = traceback.TracebackException.from_exception(exc)
    clean(te, set())
    return "".join(te.format())


def error_of(exc, stack=None):
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "stack": stack if stack is not None else user_stack(exc),
    }


def main():
    module_name, function_name = sys.argv[1], sys.argv[2]
    requests = os.fdopen(3, "r", encoding="utf-8")
    answers = os.fdopen(4, "w", encoding="utf-8")

    def answer(obj):
        answers.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
        answers.flush()

    sys.path.insert(0, os.getcwd())
    # The handler's file or function is not there (SCF's 437), as opposed to code that fails.
    missing = False
    try:
        module = importlib.import_module(module_name)
        handler = getattr(module, function_name, None)
        if not callable(handler):
            missing = True
            raise AttributeError(
                "module '%s' has no function '%s' (check the handler setting)" % (module_name, function_name)
            )
    except BaseException as exc:  # a broken import is the user's error, reported in full
        if isinstance(exc, ModuleNotFoundError) and exc.name == module_name:
            missing = True
        stack = user_stack(exc)
        sys.stderr.write(stack)
        sys.stdout.flush()
        sys.stderr.flush()
        answer({"ready": False, "error": error_of(exc, stack), "missing": missing})
        return 1
    # What loading printed goes to the first invocation's log.
    mark(END_OF_INVOCATION)
    answer({"ready": True})

    for line in requests:
        request = json.loads(line)
        mark(START_OF_INVOCATION)
        started = time.monotonic()
        try:
            result = handler(request["event"], request["context"])
            json.dumps(result, default=str)
            reply = {"ok": True, "result": result}
        except Exception as exc:
            stack = user_stack(exc)
            sys.stderr.write(stack)
            reply = {"ok": False, "error": error_of(exc, stack)}
        # The handler's own run time: the server judges a late-seen answer by it.
        reply["ran_ms"] = (time.monotonic() - started) * 1000
        mark(END_OF_INVOCATION)
        answer(reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
