//! The function host with real runtime processes: Python and Node.js handlers through Trellis's
//! bootstraps, a `provided` shell bootstrap, warm reuse, concurrency and throttling, timeouts,
//! crashes during init, code changes, asynchronous invocations and remote invocation with a
//! SigV4 signature checked by Trellis's own verifier.
//!
//! Functions are written straight into a temporary SQLite store (the Lambda API on top is
//! covered by the end-to-end tests).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};
use sha2::Digest;
use trellis_functions::catalog;
use trellis_functions::config::{FunctionConfig, FunctionDoc};
use trellis_functions::{
    FunctionHost, HostConfig, InvocationType, InvokeError, InvokeOptions, RemoteConfig,
};
use trellis_model::Context;
use trellis_store::Store;

fn ctx() -> Context {
    Context {
        partition: "aws".into(),
        region: "us-west-2".into(),
        account_id: "111122223333".into(),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    data_dir: std::path::PathBuf,
    store: Store,
    host: Arc<FunctionHost>,
}

async fn fixture_with(configure: impl FnOnce(&mut HostConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let store = Store::connect(&Store::sqlite_url(&data_dir.join("trellis.db")))
        .await
        .unwrap();
    let mut config = HostConfig::new(data_dir.clone(), ctx());
    // Runtimes run sandboxed where the machine allows it (root, as in CI); a developer's
    // unprivileged run uses no isolation rather than failing every invocation.
    if !rustix::process::geteuid().is_root() {
        config.isolation.mode = trellis_functions::IsolationMode::None;
    }
    configure(&mut config);
    let host = FunctionHost::new(store.clone(), config).unwrap();
    Fixture {
        _dir: dir,
        data_dir,
        store,
        host,
    }
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

fn zip(files: &[(&str, &str, u32)]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut out);
        for (path, content, mode) in files {
            let options = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            w.start_file(*path, options).unwrap();
            w.write_all(content.as_bytes()).unwrap();
        }
        w.finish().unwrap();
    }
    out.into_inner()
}

/// Writes (or replaces) a function's `$LATEST` in the store, as CreateFunction or
/// UpdateFunctionCode would.
async fn deploy(
    f: &Fixture,
    name: &str,
    runtime: &str,
    handler: &str,
    files: &[(&str, &str, u32)],
    timeout: u32,
) {
    let code = zip(files);
    let sha = hex::encode(sha2::Sha256::digest(&code));
    let doc = FunctionDoc {
        name: name.into(),
        config: FunctionConfig {
            runtime: runtime.into(),
            handler: handler.into(),
            role: "arn:aws:iam::111122223333:role/r".into(),
            description: String::new(),
            timeout,
            memory_size: 128,
            environment: BTreeMap::from([("GREETING".to_string(), "hello".to_string())]),
            code_sha256: sha.clone(),
            code_size: code.len() as u64,
            last_modified: trellis_functions::config::now_last_modified(),
            revision_id: trellis_functions::config::new_revision_id(),
        },
        last_version: 0,
        last_published_digest: None,
        tags: BTreeMap::new(),
    };
    let mut tx = f.store.write().await.unwrap();
    tx.put_blob(&sha, &code).await.unwrap();
    let record = catalog::function_record(&ctx(), &doc);
    match catalog::get_function(&mut tx, name).await.unwrap() {
        Some(existing) => {
            let mut record = record;
            record.seq = existing.record.seq;
            tx.update(&record).await.unwrap();
        }
        None => {
            tx.insert(&record).await.unwrap();
        }
    }
    tx.commit().await.unwrap();
}

// `pid` is the pid in the sandbox's PID namespace (the same for every sandbox); `instance` tells
// runtime processes apart.
const PY_HANDLER: &str = r#"
import os, time
INSTANCE = os.urandom(8).hex()
def handler(event, context):
    print("handling", event.get("n"))
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {
        "pid": os.getpid(),
        "instance": INSTANCE,
        "event": event,
        "greeting": os.environ.get("GREETING"),
        "function": context.function_name,
        "version": context.function_version,
        "arn": context.invoked_function_arn,
        "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 30000,
    }
"#;

async fn deploy_python(f: &Fixture, name: &str, timeout: u32) {
    deploy(
        f,
        name,
        "python3.12",
        "app.handler",
        &[("app.py", PY_HANDLER, 0o644)],
        timeout,
    )
    .await;
}

fn json_of(payload: &Bytes) -> Value {
    serde_json::from_slice(payload)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(payload)))
}

fn decode_tail(tail: &Option<String>) -> String {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(tail.as_deref().expect("a log tail"))
        .unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

fn tail_options() -> InvokeOptions {
    InvokeOptions {
        log_tail: true,
        ..InvokeOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_handler_runs_and_its_process_is_reused() {
    let f = fixture().await;
    deploy_python(&f, "py", 10).await;
    let first = f
        .host
        .invoke_with(
            &ctx(),
            "py",
            Bytes::from_static(br#"{"n": 1}"#),
            &tail_options(),
        )
        .await
        .unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.function_error, None, "{:?}", first.payload);
    assert_eq!(first.executed_version.as_deref(), Some("$LATEST"));
    let doc = json_of(&first.payload);
    assert_eq!(doc["event"], json!({"n": 1}));
    assert_eq!(doc["greeting"], "hello");
    assert_eq!(doc["function"], "py");
    assert_eq!(doc["version"], "$LATEST");
    assert_eq!(
        doc["arn"],
        "arn:aws:lambda:us-west-2:111122223333:function:py"
    );
    assert_eq!(doc["remaining_ok"], true);
    let tail = decode_tail(&first.log_tail);
    assert!(tail.contains("START RequestId: "), "{tail}");
    assert!(tail.contains("handling 1\n"), "{tail}");
    assert!(tail.contains("REPORT RequestId: "), "{tail}");
    assert!(
        tail.contains("Init Duration: "),
        "the first invocation is a cold start: {tail}"
    );

    // By full ARN this time: the same warm process answers.
    let second = f
        .host
        .invoke_with(
            &ctx(),
            "arn:aws:lambda:us-west-2:111122223333:function:py",
            Bytes::from_static(br#"{"n": 2}"#),
            &tail_options(),
        )
        .await
        .unwrap();
    let doc2 = json_of(&second.payload);
    assert_eq!(
        doc2["instance"], doc["instance"],
        "a warm process is reused"
    );
    let tail = decode_tail(&second.log_tail);
    assert!(
        tail.contains("handling 2\n") && !tail.contains("handling 1"),
        "{tail}"
    );
    assert!(!tail.contains("Init Duration"), "{tail}");

    let log = std::fs::read_to_string(trellis_functions::log_path(&f.data_dir, "py")).unwrap();
    assert!(
        log.contains("handling 1\n") && log.contains("handling 2\n"),
        "{log}"
    );
    assert_eq!(log.matches("END RequestId: ").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_errors_are_unhandled_with_the_error_document() {
    let f = fixture().await;
    deploy_python(&f, "py-err", 10).await;
    let out = f
        .host
        .invoke(&ctx(), "py-err", Bytes::from_static(br#"{"fail": true}"#))
        .await
        .unwrap();
    assert_eq!(out.status, 200);
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    let doc = json_of(&out.payload);
    assert_eq!(doc["errorType"], "ValueError");
    assert_eq!(doc["errorMessage"], "asked to fail");
    assert!(doc["stackTrace"].as_array().is_some_and(|t| !t.is_empty()));
    // The process survives a handled exception and serves the next invocation.
    let ok = f
        .host
        .invoke(&ctx(), "py-err", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert_eq!(ok.function_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_handlers_run_in_both_module_styles() {
    let f = fixture().await;
    deploy(
        &f,
        "node-cjs",
        "nodejs20.x",
        "index.handler",
        &[(
            "index.js",
            "exports.handler = async (event, context) => { console.log('node says hi'); return { pid: process.pid, event, greeting: process.env.GREETING, fn: context.functionName }; };",
            0o644,
        )],
        10,
    )
    .await;
    let out = f
        .host
        .invoke_with(
            &ctx(),
            "node-cjs",
            Bytes::from_static(br#"{"a": [1, 2]}"#),
            &tail_options(),
        )
        .await
        .unwrap();
    assert_eq!(out.function_error, None, "{:?}", out.payload);
    let doc = json_of(&out.payload);
    assert_eq!(doc["event"], json!({"a": [1, 2]}));
    assert_eq!(doc["greeting"], "hello");
    assert_eq!(doc["fn"], "node-cjs");
    assert!(decode_tail(&out.log_tail).contains("node says hi"));

    deploy(
        &f,
        "node-esm",
        "nodejs22.x",
        "lib/main.run",
        &[(
            "lib/main.mjs",
            "export const run = (event, context, callback) => { if (event.fail) { callback(new TypeError('bad input')); } else { callback(null, { doubled: event.x * 2 }); } };",
            0o644,
        )],
        10,
    )
    .await;
    let out = f
        .host
        .invoke(&ctx(), "node-esm", Bytes::from_static(br#"{"x": 21}"#))
        .await
        .unwrap();
    assert_eq!(json_of(&out.payload), json!({"doubled": 42}));
    let out = f
        .host
        .invoke(&ctx(), "node-esm", Bytes::from_static(br#"{"fail": true}"#))
        .await
        .unwrap();
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    let doc = json_of(&out.payload);
    assert_eq!(doc["errorType"], "TypeError");
    assert_eq!(doc["errorMessage"], "bad input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provided_runtime_runs_a_shell_bootstrap() {
    let f = fixture().await;
    let bootstrap = r#"#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS="$(mktemp)"
  EVENT="$(curl -sS -D "$HEADERS" "$API/invocation/next")"
  ID="$(grep -i '^lambda-runtime-aws-request-id:' "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)"
  echo "shell got $EVENT"
  curl -sS -X POST "$API/invocation/$ID/response" -d "{\"echo\": $EVENT, \"handler\": \"$_HANDLER\"}" >/dev/null
  rm -f "$HEADERS"
done
"#;
    deploy(
        &f,
        "shell",
        "provided.al2023",
        "function.handler",
        &[("bootstrap", bootstrap, 0o755)],
        10,
    )
    .await;
    for i in 0..3 {
        let payload = Bytes::from(format!(r#"{{"i": {i}}}"#));
        let out = f
            .host
            .invoke_with(&ctx(), "shell", payload, &tail_options())
            .await
            .unwrap();
        assert_eq!(out.function_error, None, "{:?}", out.payload);
        assert_eq!(
            json_of(&out.payload),
            json!({"echo": {"i": i}, "handler": "function.handler"})
        );
        assert!(decode_tail(&out.log_tail).contains(&format!("shell got {{\"i\": {i}}}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_over_6mb_are_a_function_error() {
    let f = fixture().await;
    let source = "def handler(event, context):\n    return 'x' * event['size']\n";
    deploy(
        &f,
        "big",
        "python3.12",
        "app.handler",
        &[("app.py", source, 0o644)],
        10,
    )
    .await;
    let out = f
        .host
        .invoke(&ctx(), "big", Bytes::from_static(br#"{"size": 7000000}"#))
        .await
        .unwrap();
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    let doc = json_of(&out.payload);
    assert_eq!(doc["errorType"], "Function.ResponseSizeTooLarge");
    assert!(
        doc["errorMessage"]
            .as_str()
            .unwrap()
            .contains("6291556 bytes")
    );
    // Just under the limit is fine.
    let out = f
        .host
        .invoke(&ctx(), "big", Bytes::from_static(br#"{"size": 6000000}"#))
        .await
        .unwrap();
    assert_eq!(out.function_error, None);
    assert_eq!(out.payload.len(), 6_000_002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bootstrap_is_an_invalid_entrypoint() {
    let f = fixture().await;
    deploy(
        &f,
        "nobootstrap",
        "provided.al2",
        "x",
        &[("README", "no bootstrap here", 0o644)],
        3,
    )
    .await;
    let out = f
        .host
        .invoke(&ctx(), "nobootstrap", Bytes::new())
        .await
        .unwrap();
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(
        json_of(&out.payload)["errorType"],
        "Runtime.InvalidEntrypoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_kill_the_process_and_say_so() {
    let f = fixture().await;
    deploy_python(&f, "slow", 1).await;
    let warm = f
        .host
        .invoke(&ctx(), "slow", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let instance = json_of(&warm.payload)["instance"].clone();
    let pid = f.host.idle_pids("slow", "$LATEST")[0];
    let out = f
        .host
        .invoke_with(
            &ctx(),
            "slow",
            Bytes::from_static(br#"{"sleep": 5}"#),
            &tail_options(),
        )
        .await
        .unwrap();
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    let doc = json_of(&out.payload);
    assert_eq!(doc["errorType"], "Sandbox.Timedout");
    let message = doc["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("RequestId: ")
            && message.ends_with("Error: Task timed out after 1.00 seconds"),
        "{message}"
    );
    let tail = decode_tail(&out.log_tail);
    assert!(tail.contains("Task timed out after 1.00 seconds"), "{tail}");
    assert!(tail.contains("Status: timeout"), "{tail}");
    // The process is gone (killed, and reaped by the host).
    let proc = format!("/proc/{pid}");
    let gone = async {
        while std::path::Path::new(&proc).exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .expect("timed-out process still running");
    // And the next invocation gets a fresh one.
    let again = f
        .host
        .invoke(&ctx(), "slow", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert_eq!(again.function_error, None);
    assert_ne!(json_of(&again.payload)["instance"], instance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_and_failures_during_init_are_reported() {
    let f = fixture().await;
    deploy(
        &f,
        "exits",
        "python3.12",
        "app.handler",
        &[(
            "app.py",
            "import os\nprint('about to crash', flush=True)\nos._exit(3)\n",
            0o644,
        )],
        3,
    )
    .await;
    let out = f
        .host
        .invoke_with(&ctx(), "exits", Bytes::new(), &tail_options())
        .await
        .unwrap();
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    let doc = json_of(&out.payload);
    assert_eq!(doc["errorType"], "Runtime.ExitError");
    assert!(
        doc["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Error: Runtime exited with error: exit status 3"),
        "{doc}"
    );

    deploy(
        &f,
        "noimport",
        "python3.12",
        "missing.handler",
        &[("app.py", "x = 1\n", 0o644)],
        3,
    )
    .await;
    let out = f
        .host
        .invoke(&ctx(), "noimport", Bytes::new())
        .await
        .unwrap();
    let doc = json_of(&out.payload);
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(doc["errorType"], "Runtime.ImportModuleError");
    assert!(
        doc["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Unable to import module 'missing'")
    );

    deploy(
        &f,
        "raises",
        "python3.12",
        "app.handler",
        &[("app.py", "raise RuntimeError('config missing')\n", 0o644)],
        3,
    )
    .await;
    let out = f.host.invoke(&ctx(), "raises", Bytes::new()).await.unwrap();
    let doc = json_of(&out.payload);
    assert_eq!(doc["errorType"], "RuntimeError");
    assert_eq!(doc["errorMessage"], "config missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_get_their_own_processes() {
    let f = fixture().await;
    deploy_python(&f, "wide", 10).await;
    let invocations: Vec<_> = (0..3)
        .map(|_| {
            let host = f.host.clone();
            tokio::spawn(async move {
                host.invoke(&ctx(), "wide", Bytes::from_static(br#"{"sleep": 1}"#))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut pids = Vec::new();
    for handle in invocations {
        let out = handle.await.unwrap();
        let doc = json_of(&out.payload);
        let instance = doc["instance"].as_str();
        pids.push(
            instance
                .unwrap_or_else(|| {
                    let log =
                        std::fs::read_to_string(trellis_functions::log_path(&f.data_dir, "wide"))
                            .unwrap_or_default();
                    panic!("{doc}\n{log}")
                })
                .to_string(),
        );
    }
    pids.sort();
    pids.dedup();
    assert_eq!(
        pids.len(),
        3,
        "three concurrent invocations, three processes"
    );
    // All three are now warm and idle.
    assert_eq!(f.host.idle_pids("wide", "$LATEST").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_concurrency_and_queue_invocations_are_throttled() {
    let f = fixture_with(|c| {
        c.concurrency = 1;
        c.queue_depth = 1;
    })
    .await;
    deploy_python(&f, "narrow", 10).await;
    // Warm up so that the slow invocations below start at once.
    f.host
        .invoke(&ctx(), "narrow", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let running = {
        let host = f.host.clone();
        tokio::spawn(async move {
            host.invoke(&ctx(), "narrow", Bytes::from_static(br#"{"sleep": 1}"#))
                .await
        })
    };
    // Wait until it holds the only slot (its process left the idle list)…
    let taken = async {
        while !f.host.idle_pids("narrow", "$LATEST").is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), taken)
        .await
        .unwrap();
    let queued = {
        let host = f.host.clone();
        tokio::spawn(async move {
            host.invoke(&ctx(), "narrow", Bytes::from_static(br#"{"sleep": 0}"#))
                .await
        })
    };
    // …and until the second one waits in the queue.
    let waiting = async {
        while f.host.queued("narrow") < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap();
    let third = f
        .host
        .invoke(&ctx(), "narrow", Bytes::from_static(b"{}"))
        .await;
    assert_eq!(third, Err(InvokeError::TooManyRequests));
    assert!(running.await.unwrap().is_ok());
    assert!(
        queued.await.unwrap().is_ok(),
        "the queued invocation runs once a slot frees"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_code_replaces_warm_processes() {
    let f = fixture().await;
    let v1 = "def handler(e, c):\n    return 'v1'\n";
    let v2 = "def handler(e, c):\n    return 'v2'\n";
    deploy(
        &f,
        "changing",
        "python3.11",
        "app.handler",
        &[("app.py", v1, 0o644)],
        3,
    )
    .await;
    let out = f
        .host
        .invoke(&ctx(), "changing", Bytes::new())
        .await
        .unwrap();
    assert_eq!(json_of(&out.payload), json!("v1"));
    deploy(
        &f,
        "changing",
        "python3.11",
        "app.handler",
        &[("app.py", v2, 0o644)],
        3,
    )
    .await;
    let out = f
        .host
        .invoke(&ctx(), "changing", Bytes::new())
        .await
        .unwrap();
    assert_eq!(json_of(&out.payload), json!("v2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_checked_before_anything_runs() {
    let f = fixture().await;
    deploy_python(&f, "checked", 3).await;
    assert!(matches!(
        f.host.invoke(&ctx(), "nope", Bytes::new()).await,
        Err(InvokeError::NotFound(m)) if m == "Function not found: arn:aws:lambda:us-west-2:111122223333:function:nope"
    ));
    assert!(matches!(
        f.host.invoke(&ctx(), "checked:7", Bytes::new()).await,
        Err(InvokeError::NotFound(m)) if m.ends_with("function:checked:7")
    ));
    assert!(matches!(
        f.host.invoke(&ctx(), "bad name!", Bytes::new()).await,
        Err(InvokeError::InvalidName(_))
    ));
    assert!(matches!(
        f.host
            .invoke(&ctx(), "checked", Bytes::from_static(b"{not json"))
            .await,
        Err(InvokeError::InvalidRequestContent(_))
    ));
    let big = Bytes::from(format!("\"{}\"", "x".repeat(6 * 1024 * 1024)));
    assert!(matches!(
        f.host.invoke(&ctx(), "checked", big).await,
        Err(InvokeError::RequestTooLarge(m)) if m.contains("6291456 bytes")
    ));
    let mismatch = InvokeOptions {
        qualifier: Some("2".into()),
        ..InvokeOptions::default()
    };
    assert!(matches!(
        f.host
            .invoke_with(&ctx(), "checked:1", Bytes::new(), &mismatch)
            .await,
        Err(InvokeError::InvalidParameter(_))
    ));
    // Another account's function with no remote endpoint configured.
    assert!(matches!(
        f.host
            .invoke(
                &ctx(),
                "arn:aws:lambda:us-west-2:999999999999:function:checked",
                Bytes::new()
            )
            .await,
        Err(InvokeError::NotFound(_))
    ));
    let dry = InvokeOptions {
        invocation_type: InvocationType::DryRun,
        ..InvokeOptions::default()
    };
    let out = f
        .host
        .invoke_with(&ctx(), "checked", Bytes::new(), &dry)
        .await
        .unwrap();
    assert_eq!(out.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_invocations_run_in_the_background() {
    let f = fixture().await;
    deploy_python(&f, "async-fn", 3).await;
    let event = InvokeOptions {
        invocation_type: InvocationType::Event,
        ..InvokeOptions::default()
    };
    let out = f
        .host
        .invoke_with(
            &ctx(),
            "async-fn",
            Bytes::from_static(br#"{"n": 42}"#),
            &event,
        )
        .await
        .unwrap();
    assert_eq!(out.status, 202);
    assert!(out.payload.is_empty());
    // The invocation shows up in the function's log.
    let path = trellis_functions::log_path(&f.data_dir, "async-fn");
    let ran = async {
        loop {
            if std::fs::read_to_string(&path).is_ok_and(|l| l.contains("END RequestId")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), ran)
        .await
        .unwrap();
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("handling 42")
    );
}

/// A fake remote Lambda: verifies the SigV4 signature (service `lambda`) with Trellis's own
/// verifier and answers like Invoke.
async fn fake_remote() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use axum::extract::Request;
    let app = axum::Router::new().fallback(|req: Request| async move {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let hash = hex::encode(sha2::Sha256::digest(&body));
        let keys = HashMap::from([("AKIDREMOTE".to_string(), "remote-secret".to_string())]);
        let opts = trellis_sigv4::VerifyOptions::new("lambda", time::OffsetDateTime::now_utc());
        if let Err(e) = trellis_sigv4::verify(&parts, &hash, &keys, &opts) {
            return (
                axum::http::StatusCode::FORBIDDEN,
                [("x-amzn-ErrorType", e.aws_code())],
                format!(r#"{{"message":"{e}"}}"#),
            )
                .into_response();
        }
        let path = parts.uri.path().to_string();
        if path.contains("missing") {
            return (
                axum::http::StatusCode::NOT_FOUND,
                [("x-amzn-ErrorType", "ResourceNotFoundException")],
                r#"{"Type":"User","Message":"Function not found: remote"}"#.to_string(),
            )
                .into_response();
        }
        let answer = json!({
            "path": path,
            "query": parts.uri.query(),
            "type": parts.headers.get("x-amz-invocation-type").and_then(|v| v.to_str().ok()),
            "payload": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
        });
        (
            axum::http::StatusCode::OK,
            [
                ("x-amz-executed-version", "4"),
                ("x-amz-function-error", "Unhandled"),
            ],
            answer.to_string(),
        )
            .into_response()
    });
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_not_hosted_here_go_to_the_remote_endpoint_signed() {
    let (addr, _server) = fake_remote().await;
    let f = fixture_with(|c| {
        c.remote = Some(RemoteConfig {
            endpoint: format!("http://{addr}").parse().unwrap(),
            access_key_id: "AKIDREMOTE".into(),
            secret_access_key: "remote-secret".into(),
            session_token: None,
            region: "us-west-2".into(),
        });
    })
    .await;
    deploy_python(&f, "local", 3).await;
    // Local functions still run locally.
    let local = f
        .host
        .invoke(&ctx(), "local", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert!(json_of(&local.payload)["pid"].is_u64());

    // An ARN in another region goes out with its qualifier.
    let out = f
        .host
        .invoke(
            &ctx(),
            "arn:aws:lambda:eu-west-1:444455556666:function:far-away:live",
            Bytes::from_static(br#"{"k": 1}"#),
        )
        .await
        .unwrap();
    let doc = json_of(&out.payload);
    assert_eq!(
        doc["path"],
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A444455556666%3Afunction%3Afar-away/invocations"
    );
    assert_eq!(doc["query"], "Qualifier=live");
    assert_eq!(doc["type"], "RequestResponse");
    assert_eq!(doc["payload"], json!({"k": 1}));
    assert_eq!(out.executed_version.as_deref(), Some("4"));
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));

    // A name not in the store goes out too, and the remote's errors come back as they are.
    let err = f
        .host
        .invoke(&ctx(), "missing", Bytes::new())
        .await
        .unwrap_err();
    match err {
        InvokeError::Remote {
            status,
            error_type,
            message,
            ..
        } => {
            assert_eq!(status, 404);
            assert_eq!(error_type, "ResourceNotFoundException");
            assert_eq!(message, "Function not found: remote");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_remote_is_a_service_error() {
    let f = fixture_with(|c| {
        c.remote = Some(RemoteConfig {
            // Port 1 on loopback: nothing listens there.
            endpoint: "http://127.0.0.1:1".parse().unwrap(),
            access_key_id: "AKID".into(),
            secret_access_key: "s".into(),
            session_token: None,
            region: "us-west-2".into(),
        });
    })
    .await;
    let err = f
        .host
        .invoke(&ctx(), "elsewhere", Bytes::new())
        .await
        .unwrap_err();
    assert!(matches!(err, InvokeError::Unavailable(_)), "{err:?}");
    assert_eq!(err.status(), 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_invocation_does_not_return_its_busy_process_to_the_pool() {
    let f = fixture().await;
    deploy_python(&f, "abandoned", 60).await;
    let warm = f
        .host
        .invoke(&ctx(), "abandoned", Bytes::from_static(br#"{"n": 1}"#))
        .await
        .unwrap();
    let busy_instance = json_of(&warm.payload)["instance"].clone();
    let idle = f.host.idle_pids("abandoned", "$LATEST");
    assert_eq!(idle.len(), 1);
    let busy_pid = idle[0];

    // The caller of a long invocation goes away (as an Invoke client that disconnects does).
    let host = f.host.clone();
    let abandoned = tokio::spawn(async move {
        host.invoke(&ctx(), "abandoned", Bytes::from_static(br#"{"sleep": 30}"#))
            .await
    });
    for _ in 0..1000 {
        if f.host.idle_pids("abandoned", "$LATEST").is_empty() {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        f.host.idle_pids("abandoned", "$LATEST").is_empty(),
        "the warm process took the long invocation"
    );
    abandoned.abort();
    let _ = abandoned.await;

    // The process still running that invocation must not serve the next one.
    assert!(!f.host.idle_pids("abandoned", "$LATEST").contains(&busy_pid));
    let next = f
        .host
        .invoke(&ctx(), "abandoned", Bytes::from_static(br#"{"n": 7}"#))
        .await
        .unwrap();
    let doc = json_of(&next.payload);
    assert_eq!(doc["event"], json!({"n": 7}));
    assert_ne!(doc["instance"], busy_instance);
}
