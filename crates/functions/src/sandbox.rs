//! One runtime process ("sandbox"): its start (program, working dir, environment), its Runtime
//! API server and output capture, one invocation at a time with the timeout enforced, and its
//! end (the whole process group is killed, and with isolation the sandbox's PID namespace and
//! cgroup: see [`crate::isolation`]).
//!
//! An invocation goes through two phases. Until the runtime takes the event from `/next` it is
//! initializing: an `/init/error`, an exit, or more than [`INIT_TIMEOUT`] ends the sandbox with an
//! init error. Once the runtime has the event the function's timeout runs, from the moment the
//! event was handed out (so the `Lambda-Runtime-Deadline-Ms` the runtime sees is the deadline
//! Trellis enforces); a result, an exit or the deadline ends the invocation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::RuntimeKind;
use crate::isolation::{Cgroup, Isolation, RUNTIME_ROOT, TASK_ROOT};
use crate::logs::{FunctionLog, OutputCapture, TAIL_BYTES, output_pipe};
use crate::runtime_api::{Invocation, RuntimeApi, RuntimeApiServer, RuntimeOutcome};

/// Lambda's limit for the init phase of an on-demand function.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The bootstrap Trellis runs for Python handlers (written into the runtime dir at start).
pub const PYTHON_BOOTSTRAP: &str = include_str!("bootstrap/trellis_bootstrap.py");
pub const PYTHON_BOOTSTRAP_FILE: &str = "trellis_bootstrap.py";
/// The bootstrap Trellis runs for Node.js handlers.
pub const NODE_BOOTSTRAP: &str = include_str!("bootstrap/trellis_bootstrap.mjs");
pub const NODE_BOOTSTRAP_FILE: &str = "trellis_bootstrap.mjs";

/// Host environment variables passed through to runtime processes. Everything else of the
/// server's environment — its credentials in particular — stays out.
const PASSTHROUGH_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Everything needed to start runtime processes for one function version.
#[derive(Debug)]
pub struct SandboxSpec {
    pub function_name: String,
    pub version: String,
    pub runtime: String,
    pub kind: RuntimeKind,
    pub handler: String,
    pub code_dir: PathBuf,
    /// The tree digest of `code_dir` recorded when it was unpacked; checked before each start.
    pub code_digest: String,
    pub runtime_dir: PathBuf,
    pub environment: BTreeMap<String, String>,
    pub region: String,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub node: String,
    pub python: String,
    pub log: Arc<FunctionLog>,
    /// How runtime processes are confined (or not: `--function-isolation none`).
    pub isolation: Arc<Isolation>,
}

/// How an invocation failed outside the function's own code.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// The deadline passed; the process was killed.
    Timeout,
    /// The process exited (or could not start); the text says how.
    Exited(String),
    /// The runtime reported an init error (the document it posted).
    InitError(Bytes),
    /// The runtime did not ask for its first invocation within [`INIT_TIMEOUT`].
    InitTimeout,
    /// The runtime could not be started at all (missing program or bootstrap).
    InvalidEntrypoint(String),
    /// The sandbox used all of its `MemorySize` and the kernel killed it.
    OutOfMemory(String),
    /// The sandbox could not be set up (cgroup, uid).
    Sandbox(String),
    /// The unpacked code is not what was unpacked: nothing was started (the host unpacks the
    /// code again and retries).
    CodeChanged,
}

/// The end of one invocation in a sandbox.
#[derive(Debug)]
pub struct Completed {
    pub request_id: String,
    pub outcome: Result<RuntimeOutcome, Failure>,
    /// The invocation's log: START, the output, END and REPORT, at most [`TAIL_BYTES`].
    pub tail: Vec<u8>,
    /// The function's timeout, for the timeout error's message.
    pub timeout: Duration,
}

impl Completed {
    /// The payload and `X-Amz-Function-Error` value the invoker returns, in Lambda's shapes.
    pub fn into_payload(self) -> (Bytes, Option<String>) {
        let id = &self.request_id;
        let error = |error_type: &str, message: String| {
            (
                Bytes::from(
                    json!({ "errorType": error_type, "errorMessage": message }).to_string(),
                ),
                Some("Unhandled".to_string()),
            )
        };
        match self.outcome {
            Ok(RuntimeOutcome::Response(bytes)) => (bytes, None),
            Ok(RuntimeOutcome::Error { payload, .. }) => (payload, Some("Unhandled".to_string())),
            Ok(RuntimeOutcome::ResponseTooLarge) => error(
                "Function.ResponseSizeTooLarge",
                format!(
                    "Response payload size exceeded maximum allowed payload size ({} bytes).",
                    crate::runtime_api::MAX_RESPONSE_BYTES
                ),
            ),
            Err(Failure::Timeout) => (
                timeout_payload(id, self.timeout),
                Some("Unhandled".to_string()),
            ),
            Err(Failure::Exited(how)) => {
                error("Runtime.ExitError", format!("RequestId: {id} Error: {how}"))
            }
            Err(Failure::InitError(doc)) => (doc, Some("Unhandled".to_string())),
            Err(Failure::InitTimeout) => error(
                "Sandbox.Timedout",
                format!(
                    "RequestId: {id} Error: Init timed out after {:.2} seconds",
                    INIT_TIMEOUT.as_secs_f64()
                ),
            ),
            Err(Failure::InvalidEntrypoint(message)) => error(
                "Runtime.InvalidEntrypoint",
                format!("RequestId: {id} Error: {message}"),
            ),
            Err(Failure::OutOfMemory(how)) => error(
                "Runtime.OutOfMemory",
                format!("RequestId: {id} Error: {how}"),
            ),
            Err(Failure::Sandbox(message)) => error(
                "Runtime.SandboxError",
                format!("RequestId: {id} Error: {message}"),
            ),
            Err(Failure::CodeChanged) => error(
                "Runtime.SandboxError",
                format!("RequestId: {id} Error: the function's unpacked code changed on disk"),
            ),
        }
    }
}

/// Lambda's timeout error document.
pub fn timeout_payload(request_id: &str, timeout: Duration) -> Bytes {
    Bytes::from(
        json!({
            "errorType": "Sandbox.Timedout",
            "errorMessage": format!(
                "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
                timeout.as_secs_f64()
            ),
        })
        .to_string(),
    )
}

/// A running runtime process.
pub struct Sandbox {
    pub id: String,
    spec: Arc<SandboxSpec>,
    server: RuntimeApiServer,
    /// Process id, which is also the process group id (the process leads its own group).
    pid: Option<u32>,
    exit: watch::Receiver<Option<String>>,
    capture: Option<OutputCapture>,
    started_at: Instant,
    /// Whether the first invocation (which reports the init duration) has run.
    warmed: AtomicBool,
    killed: AtomicBool,
    /// A start failure to report to the first invocation instead of running it.
    start_failure: Option<Failure>,
    /// The sandbox's cgroup (with isolation).
    cgroup: Option<Arc<Cgroup>>,
    /// Set (before the exit is announced) when the OOM killer ended the sandbox: the cgroup
    /// that says so is removed right after.
    oom_killed: Arc<AtomicBool>,
    pub last_used: std::sync::Mutex<Instant>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("id", &self.id)
            .field("function", &self.spec.function_name)
            .field("version", &self.spec.version)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

fn describe_exit(status: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(0), _) => "Runtime exited without providing a reason".to_string(),
            // bwrap reports a command killed by a signal as 128 + the signal.
            (Some(137), _) => "Runtime exited with error: signal: killed".to_string(),
            (Some(code), _) => format!("Runtime exited with error: exit status {code}"),
            (None, Some(9)) => "Runtime exited with error: signal: killed".to_string(),
            (None, Some(sig)) => format!("Runtime exited with error: signal {sig}"),
            (None, None) => "Runtime exited".to_string(),
        },
        Err(e) => format!("Runtime exited: {e}"),
    }
}

fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

impl Sandbox {
    /// Starts a runtime process for `spec`. A process that cannot be started still yields a
    /// sandbox: its first invocation reports why, as Lambda reports an init failure.
    pub async fn start(spec: Arc<SandboxSpec>) -> std::io::Result<Sandbox> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        // The code is checked before every start: a tree changed on disk is never run.
        let check = spec.code_dir.clone();
        let digest = tokio::task::spawn_blocking(move || crate::code::tree_digest(&check))
            .await
            .ok()
            .and_then(Result::ok);
        let code_changed = digest.as_deref() != Some(spec.code_digest.as_str());
        let isolated = spec.isolation.enabled();
        let uid =
            if isolated {
                Some(spec.isolation.lease_uid().ok_or_else(|| {
                    std::io::Error::other("every sandbox uid of the range is in use")
                })?)
            } else {
                None
            };
        let server = RuntimeApi::bind_for(uid.as_ref().map(|u| u.uid)).await?;
        let (program, args) = match spec.kind {
            RuntimeKind::Node => (
                PathBuf::from(&spec.node),
                vec![spec.runtime_dir.join(NODE_BOOTSTRAP_FILE)],
            ),
            RuntimeKind::Python => (
                PathBuf::from(&spec.python),
                vec![spec.runtime_dir.join(PYTHON_BOOTSTRAP_FILE)],
            ),
            RuntimeKind::Provided => (spec.code_dir.join("bootstrap"), Vec::new()),
        };
        let (exit_tx, exit) = watch::channel(None);
        let mut sandbox = Sandbox {
            id: id.clone(),
            spec: spec.clone(),
            server,
            pid: None,
            exit,
            capture: None,
            started_at: Instant::now(),
            warmed: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            start_failure: None,
            cgroup: None,
            oom_killed: Arc::new(AtomicBool::new(false)),
            last_used: std::sync::Mutex::new(Instant::now()),
        };
        if code_changed {
            tracing::warn!(function = %spec.function_name, dir = %spec.code_dir.display(), "unpacked code changed on disk; not starting it");
            sandbox.start_failure = Some(Failure::CodeChanged);
            return Ok(sandbox);
        }
        if spec.kind == RuntimeKind::Provided && !program.is_file() {
            sandbox.start_failure = Some(Failure::InvalidEntrypoint(format!(
                "Couldn't find valid bootstrap(s): [{}]",
                program.display()
            )));
            return Ok(sandbox);
        }

        let (read_end, writer) = output_pipe()?;
        let writer2 = writer.try_clone()?;
        let mut cmd = match &uid {
            Some(lease) => {
                let cgroup = match spec.isolation.cgroup(&id, spec.memory_mb) {
                    Ok(c) => c,
                    Err(e) => {
                        sandbox.start_failure = Some(Failure::Sandbox(format!(
                            "cannot create the sandbox's cgroup: {e}"
                        )));
                        return Ok(sandbox);
                    }
                };
                sandbox.cgroup = Some(cgroup);
                let (program, args) = sandboxed_program(&spec, &program, &args);
                spec.isolation.command(
                    lease.uid,
                    &spec.code_dir,
                    &spec.runtime_dir,
                    &program,
                    &args,
                )
            }
            None => {
                let mut cmd = tokio::process::Command::new(&program);
                cmd.args(&args).current_dir(&spec.code_dir);
                cmd
            }
        };
        cmd.env_clear()
            .envs(sandbox.environment(&id))
            .stdin(if isolated {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(writer2))
            // Its own process group, so that a timeout kills whatever the runtime started too.
            .process_group(0)
            .kill_on_drop(true);
        let spawned = cmd.spawn();
        // The command holds our copies of the pipe's write end: drop them so the reader sees
        // end-of-file when the process and its children are gone.
        drop(cmd);
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                sandbox.start_failure = Some(Failure::InvalidEntrypoint(format!(
                    "Runtime failed to start: fork/exec {}: {e}",
                    program.display()
                )));
                return Ok(sandbox);
            }
        };
        sandbox.pid = child.id();
        if let Some(cgroup) = &sandbox.cgroup {
            // The launcher waits on its stdin until it is in the cgroup, so that everything it
            // starts is counted, limited and killed with it.
            let placed = match sandbox.pid {
                Some(pid) => cgroup.add(pid),
                None => Err(std::io::Error::other("the launcher has no pid")),
            };
            let released = match (placed, child.stdin.take()) {
                (Ok(()), Some(mut stdin)) => {
                    use tokio::io::AsyncWriteExt;
                    stdin.write_all(b"go\n").await
                }
                (Ok(()), None) => Err(std::io::Error::other("the launcher has no stdin")),
                (Err(e), _) => Err(e),
            };
            if let Err(e) = released {
                let _ = child.start_kill();
                sandbox.start_failure = Some(Failure::Sandbox(format!(
                    "cannot place the runtime in its cgroup: {e}"
                )));
                return Ok(sandbox);
            }
        }
        sandbox.capture = Some(OutputCapture::spawn(read_end, spec.log.clone())?);
        let pid = sandbox.pid;
        let cgroup = sandbox.cgroup.clone();
        let oom_killed = sandbox.oom_killed.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            // Children the runtime left behind go with it.
            if let Some(pid) = pid {
                kill_group(pid);
            }
            if let Some(cgroup) = &cgroup {
                oom_killed.store(cgroup.oom_killed(), Ordering::Release);
                cgroup.kill_all();
            }
            let _ = exit_tx.send(Some(describe_exit(status)));
            if let Some(cgroup) = cgroup {
                cgroup.remove().await;
            }
            // The uid is free again only once no process of the sandbox is left.
            drop(uid);
        });
        tracing::debug!(function = %spec.function_name, version = %spec.version, sandbox = %id, pid = ?sandbox.pid, "started runtime process");
        Ok(sandbox)
    }

    fn environment(&self, sandbox_id: &str) -> Vec<(String, String)> {
        let spec = &self.spec;
        let isolated = spec.isolation.enabled();
        let mut env: Vec<(String, String)> = PASSTHROUGH_ENV
            .iter()
            // In a sandbox, the server's home, user and temporary dir mean nothing (or are not
            // there): /tmp is the sandbox's own.
            .filter(|k| !isolated || !matches!(**k, "HOME" | "USER" | "TMPDIR"))
            .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_string(), v)))
            .collect();
        if isolated {
            env.push(("HOME".into(), "/tmp".into()));
            env.push(("TMPDIR".into(), "/tmp".into()));
        }
        if !env.iter().any(|(k, _)| k == "LANG") {
            env.push(("LANG".into(), "C.UTF-8".into()));
        }
        let date = time::OffsetDateTime::now_utc().date();
        let mut set = |k: &str, v: String| env.push((k.to_string(), v));
        set("TZ", ":UTC".into());
        set("AWS_LAMBDA_RUNTIME_API", self.server.addr.to_string());
        set("_HANDLER", spec.handler.clone());
        if isolated {
            set("LAMBDA_TASK_ROOT", TASK_ROOT.into());
            set("LAMBDA_RUNTIME_DIR", RUNTIME_ROOT.into());
        } else {
            set("LAMBDA_TASK_ROOT", spec.code_dir.display().to_string());
            set("LAMBDA_RUNTIME_DIR", spec.runtime_dir.display().to_string());
        }
        set("AWS_LAMBDA_FUNCTION_NAME", spec.function_name.clone());
        set("AWS_LAMBDA_FUNCTION_VERSION", spec.version.clone());
        set(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_mb.to_string(),
        );
        set(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.function_name),
        );
        set(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!(
                "{:04}/{:02}/{:02}/[{}]{sandbox_id}",
                date.year(),
                u8::from(date.month()),
                date.day(),
                spec.version
            ),
        );
        set("AWS_REGION", spec.region.clone());
        set("AWS_DEFAULT_REGION", spec.region.clone());
        set("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into());
        match spec.kind {
            RuntimeKind::Python => {
                set("AWS_EXECUTION_ENV", format!("AWS_Lambda_{}", spec.runtime));
                // Output reaches the log (and the invocation's tail) as it is printed.
                set("PYTHONUNBUFFERED", "1".into());
                set("PYTHONDONTWRITEBYTECODE", "1".into());
            }
            RuntimeKind::Node => {
                set("AWS_EXECUTION_ENV", format!("AWS_Lambda_{}", spec.runtime));
            }
            RuntimeKind::Provided => {}
        }
        for (k, v) in &spec.environment {
            set(k, v.clone());
        }
        env
    }

    pub fn spec(&self) -> &Arc<SandboxSpec> {
        &self.spec
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Whether the process is still there to take another invocation.
    pub fn is_alive(&self) -> bool {
        self.start_failure.is_none()
            && !self.killed.load(Ordering::Acquire)
            && self.exit.borrow().is_none()
    }

    /// Kills the process group, and every process of the sandbox's cgroup. Idempotent.
    pub fn kill(&self) {
        if !self.killed.swap(true, Ordering::AcqRel)
            && let Some(pid) = self.pid
            && self.exit.borrow().is_none()
        {
            kill_group(pid);
            if let Some(cgroup) = &self.cgroup {
                cgroup.kill_all();
            }
        }
    }

    /// Runs one invocation; the sandbox must not be running another.
    pub async fn invoke(&self, invocation: Invocation) -> Completed {
        let request_id = invocation.request_id.clone();
        let timeout = invocation.timeout;
        let log = &self.spec.log;
        log.line(&format!(
            "START RequestId: {request_id} Version: {}",
            self.spec.version
        ));
        let mut head = format!(
            "START RequestId: {request_id} Version: {}\n",
            self.spec.version
        )
        .into_bytes();
        if let Some(capture) = &self.capture {
            capture.begin();
        }
        let began = Instant::now();
        let first = !self.warmed.swap(true, Ordering::AcqRel);
        let (outcome, init_duration) = self.run(invocation, first).await;
        let duration = began.elapsed();
        if let Err(Failure::Timeout) = &outcome {
            self.kill();
        }
        let output = match &self.capture {
            Some(capture) => capture.end().await,
            None => Vec::new(),
        };

        let mut tail_lines = String::new();
        if let Err(Failure::Timeout) = &outcome {
            let line = format!(
                "{} {request_id} Task timed out after {:.2} seconds",
                crate::config::now_last_modified().replace("+0000", "Z"),
                timeout.as_secs_f64()
            );
            log.line(&line);
            tail_lines.push_str(&line);
            tail_lines.push('\n');
        }
        let end = format!("END RequestId: {request_id}");
        let mut report = format!(
            "REPORT RequestId: {request_id}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
            duration.as_secs_f64() * 1000.0,
            duration.as_millis().max(1),
            self.spec.memory_mb,
            self.max_memory_mb().unwrap_or(0),
        );
        if let Some(init) = init_duration {
            report.push_str(&format!(
                "Init Duration: {:.2} ms\t",
                init.as_secs_f64() * 1000.0
            ));
        }
        match &outcome {
            Err(Failure::Timeout) => report.push_str("Status: timeout"),
            Err(_) => report.push_str("Status: error"),
            Ok(_) => {}
        }
        log.line(&end);
        log.line(&report);
        tail_lines.push_str(&end);
        tail_lines.push('\n');
        tail_lines.push_str(&report);
        tail_lines.push('\n');

        head.extend_from_slice(&output);
        head.extend_from_slice(tail_lines.as_bytes());
        if head.len() > TAIL_BYTES {
            head.drain(..head.len() - TAIL_BYTES);
        }
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Completed {
            request_id,
            outcome,
            tail: head,
            timeout,
        }
    }

    async fn run(
        &self,
        invocation: Invocation,
        first: bool,
    ) -> (Result<RuntimeOutcome, Failure>, Option<Duration>) {
        if let Some(failure) = &self.start_failure {
            return (Err(failure.clone()), None);
        }
        let api = &self.server.api;
        let mut exit = self.exit.clone();
        let mut init_error = api.init_error();
        let dispatched = match api.dispatch(invocation) {
            Ok(d) => d,
            Err(_) => {
                return (
                    Err(Failure::Exited(
                        "Runtime is busy with another invocation".into(),
                    )),
                    None,
                );
            }
        };
        // Phase 1: until the runtime takes the event.
        let init_deadline = Instant::now() + INIT_TIMEOUT;
        let exited = async {
            exit.wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|how| how.clone())
                .unwrap_or_default()
        };
        let init_failed = async {
            init_error
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|doc| doc.clone())
                .unwrap_or_default()
        };
        let deadline = tokio::select! {
            biased;
            started = dispatched.started => match started {
                Ok(deadline) => deadline,
                Err(_) => return (Err(Failure::Exited("Runtime API stopped".into())), None),
            },
            doc = init_failed => {
                self.kill();
                return (Err(Failure::InitError(doc)), None);
            }
            how = exited => {
                // An init error posted just before the exit wins: it says why.
                if let Some(doc) = api.init_error().borrow().clone() {
                    return (Err(Failure::InitError(doc)), None);
                }
                return (Err(self.exit_failure(how)), None);
            }
            _ = tokio::time::sleep_until(init_deadline) => {
                self.kill();
                return (Err(Failure::InitTimeout), None);
            }
        };
        let init_duration = first.then(|| self.started_at.elapsed());
        // Phase 2: the function runs until its deadline.
        let mut exit = self.exit.clone();
        let exited = async {
            exit.wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|how| how.clone())
                .unwrap_or_default()
        };
        let outcome = tokio::select! {
            biased;
            done = dispatched.done => match done {
                Ok(outcome) => Ok(outcome),
                Err(_) => Err(Failure::Exited("Runtime API stopped".into())),
            },
            how = exited => Err(self.exit_failure(how)),
            _ = tokio::time::sleep_until(deadline) => Err(Failure::Timeout),
        };
        (outcome, init_duration)
    }

    /// An exit, or the OOM killer's work when the sandbox's cgroup says so.
    fn exit_failure(&self, how: String) -> Failure {
        if self.oom_killed.load(Ordering::Acquire) {
            Failure::OutOfMemory(how)
        } else {
            Failure::Exited(how)
        }
    }

    /// Peak memory of the sandbox (its cgroup), or of the runtime process (`/proc`), in MB.
    fn max_memory_mb(&self) -> Option<u64> {
        if let Some(cgroup) = &self.cgroup {
            return cgroup.peak_memory().map(|b| b.div_ceil(1024 * 1024));
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb.div_ceil(1024))
    }
}

/// The program and arguments as the sandbox sees them: the interpreter by its real path (a
/// pyenv shim is a shell script needing more than the installation), the bootstrap scripts under
/// [`RUNTIME_ROOT`], a `provided` bootstrap under [`TASK_ROOT`].
fn sandboxed_program(
    spec: &SandboxSpec,
    program: &std::path::Path,
    args: &[PathBuf],
) -> (PathBuf, Vec<PathBuf>) {
    let inside = |p: &std::path::Path| -> PathBuf {
        if let Ok(rest) = p.strip_prefix(&spec.runtime_dir) {
            PathBuf::from(RUNTIME_ROOT).join(rest)
        } else if let Ok(rest) = p.strip_prefix(&spec.code_dir) {
            PathBuf::from(TASK_ROOT).join(rest)
        } else {
            p.to_path_buf()
        }
    };
    let program = match spec.kind {
        RuntimeKind::Python => spec
            .isolation
            .python_exe()
            .unwrap_or_else(|| inside(program)),
        RuntimeKind::Node => spec.isolation.node_exe().unwrap_or_else(|| inside(program)),
        RuntimeKind::Provided => inside(program),
    };
    (program, args.iter().map(|a| inside(a)).collect())
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.kill();
    }
}
