"""Trellis's runtime loop for Python handlers: imports `module.function` from `_HANDLER` in
LAMBDA_TASK_ROOT, then fetches events from the Lambda Runtime API, calls the handler with
(event, context) and posts the result, or the error as {errorMessage, errorType, stackTrace}.

Embedded in the trellis binary and written to CODE_DIR/_runtime/ (seen as /var/runtime in a sandbox) at start. Standard
library only, so it runs on any python3 the machine has.
"""

import http.client
import importlib
import json
import os
import sys
import time
import traceback

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
TASK_ROOT = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
PREFIX = "/2018-06-01/runtime"

_connection = None


def _request(method, path, body=None, headers=None):
    """One request on a kept-alive connection to the Runtime API (reconnecting once if the
    connection was closed)."""
    global _connection
    for attempt in (1, 2):
        if _connection is None:
            _connection = http.client.HTTPConnection(API)
        try:
            _connection.request(method, PREFIX + path, body=body, headers=headers or {})
            response = _connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        except (http.client.HTTPException, OSError):
            _connection.close()
            _connection = None
            if attempt == 2:
                raise


def _error_document(exc, error_type=None):
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
    }


def _post_json(path, document, error_type=None):
    headers = {"Content-Type": "application/json"}
    if error_type:
        headers["Lambda-Runtime-Function-Error-Type"] = error_type
    _request("POST", path, json.dumps(document).encode(), headers)


class LambdaContext:
    """The context object Lambda's Python runtime passes to handlers."""

    def __init__(self, request_id, deadline_ms, invoked_arn, client_context):
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.client_context = client_context
        self.identity = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _load_handler():
    spec = os.environ.get("_HANDLER", "")
    module_name, _, function_name = spec.rpartition(".")
    if not module_name or not function_name:
        raise _InitError(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)",
        )
    if TASK_ROOT not in sys.path:
        sys.path.insert(0, TASK_ROOT)
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise _InitError(
            "Runtime.ImportModuleError",
            f"Unable to import module '{module_name}': {exc}",
        ) from exc
    except SyntaxError as exc:
        raise _InitError(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
        ) from exc
    handler = getattr(module, function_name, None)
    if handler is None:
        raise _InitError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        )
    return handler


class _InitError(Exception):
    def __init__(self, error_type, message):
        super().__init__(message)
        self.error_type = error_type


def main():
    try:
        handler = _load_handler()
    except _InitError as exc:
        document = {"errorMessage": str(exc), "errorType": exc.error_type, "requestId": "", "stackTrace": []}
        print(f"[ERROR] {exc.error_type}: {exc}", file=sys.stderr, flush=True)
        _post_json("/init/error", document, exc.error_type)
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - module-level code of the handler failed
        document = _error_document(exc)
        print(f"[ERROR] {document['errorType']}: {exc}", file=sys.stderr, flush=True)
        _post_json("/init/error", document, "Runtime.Unknown")
        sys.exit(1)

    while True:
        status, headers, body = _request("GET", "/invocation/next")
        if status != 200:
            print(f"[ERROR] Runtime API /next answered {status}", file=sys.stderr, flush=True)
            sys.exit(1)
        lower = {k.lower(): v for k, v in headers.items()}
        request_id = lower.get("lambda-runtime-aws-request-id", "")
        deadline_ms = int(lower.get("lambda-runtime-deadline-ms", "0") or 0)
        invoked_arn = lower.get("lambda-runtime-invoked-function-arn", "")
        client_context = lower.get("lambda-runtime-client-context")
        if client_context:
            try:
                client_context = json.loads(client_context)
            except ValueError:
                pass
        if "lambda-runtime-trace-id" in lower:
            os.environ["_X_AMZN_TRACE_ID"] = lower["lambda-runtime-trace-id"]
        context = LambdaContext(request_id, deadline_ms, invoked_arn, client_context)
        try:
            event = json.loads(body) if body else {}
            result = handler(event, context)
        except Exception as exc:  # noqa: BLE001 - reported to the invoker
            document = _error_document(exc)
            document["requestId"] = request_id
            traceback.print_exc()
            _post_json(f"/invocation/{request_id}/error", document, document["errorType"])
            continue
        try:
            payload = json.dumps(result).encode()
        except (TypeError, ValueError) as exc:
            document = {
                "errorMessage": f"Unable to marshal response: {exc}",
                "errorType": "Runtime.MarshalError",
                "requestId": request_id,
                "stackTrace": [],
            }
            _post_json(f"/invocation/{request_id}/error", document, "Runtime.MarshalError")
            continue
        _request("POST", f"/invocation/{request_id}/response", payload, {"Content-Type": "application/json"})


if __name__ == "__main__":
    main()
