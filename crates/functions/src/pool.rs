//! Runtime process pools: warm processes per function version, admission per function, and the
//! reaping of idle and outdated processes.
//!
//! * **Admission.** Each function (by name, across its versions) may run at most `concurrency`
//!   invocations at once. Further invocations wait in a bounded queue (`queue_depth` per
//!   function); beyond that they are throttled with `TooManyRequestsException`, as Lambda throttles
//!   a function at its reserved concurrency.
//! * **Reuse.** A pool holds the idle processes of one function version with one execution
//!   digest (code, runtime, handler, environment, limits). An invocation takes an idle process or
//!   starts a new one, so concurrent invocations run in separate processes and sequential ones
//!   reuse a warm process. A process that timed out, crashed or whose pool was replaced (the
//!   function's `$LATEST` changed) is killed instead of being returned.
//! * **Reaping.** A background sweep kills processes idle longer than `idle_timeout` and forgets
//!   pools with nothing left in them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::runtime_api::Invocation;
use crate::sandbox::{Completed, Sandbox, SandboxSpec};

/// The key of a pool: function name and version (`$LATEST` or a number).
pub type PoolKey = (String, String);

struct Gate {
    semaphore: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// The warm processes of one function version with one execution digest.
pub struct Pool {
    pub digest: String,
    pub spec: Arc<SandboxSpec>,
    idle: Mutex<Vec<Arc<Sandbox>>>,
    /// Replaced by a pool for newer configuration: processes are killed when they come back.
    retired: AtomicBool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("function", &self.spec.function_name)
            .field("version", &self.spec.version)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl Pool {
    fn take_idle(&self) -> Option<Arc<Sandbox>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // Most recently used first: the warmest process, and the others age out.
        while let Some(sandbox) = idle.pop() {
            if sandbox.is_alive() {
                return Some(sandbox);
            }
        }
        None
    }

    fn put_back(&self, sandbox: Arc<Sandbox>) {
        if !sandbox.is_alive() {
            return;
        }
        if self.retired.load(Ordering::Acquire) {
            sandbox.kill();
            return;
        }
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sandbox);
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for sandbox in idle {
            sandbox.kill();
        }
    }

    /// Kills idle processes unused since `cutoff`; returns how many are left idle.
    fn reap(&self, cutoff: Instant) -> usize {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|s| {
            let keep =
                s.is_alive() && *s.last_used.lock().unwrap_or_else(|e| e.into_inner()) > cutoff;
            if !keep {
                s.kill();
            }
            keep
        });
        idle.len()
    }

    /// Process ids of the idle processes (for tests and diagnostics).
    pub fn idle_pids(&self) -> Vec<u32> {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|s| s.pid())
            .collect()
    }
}

/// Why an invocation was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled;

/// Every pool of this host.
pub struct Pools {
    concurrency: usize,
    queue_depth: usize,
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
    /// Invocations currently running, to keep busy processes' pools from being forgotten.
    busy: Mutex<HashMap<PoolKey, usize>>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools")
            .field("concurrency", &self.concurrency)
            .field("queue_depth", &self.queue_depth)
            .finish_non_exhaustive()
    }
}

impl Pools {
    pub fn new(concurrency: usize, queue_depth: usize) -> Pools {
        Pools {
            concurrency: concurrency.max(1),
            queue_depth,
            gates: Mutex::new(HashMap::new()),
            pools: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashMap::new()),
        }
    }

    fn gate(&self, function: &str) -> Arc<Gate> {
        self.gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(function.to_string())
            .or_insert_with(|| {
                Arc::new(Gate {
                    semaphore: Arc::new(Semaphore::new(self.concurrency)),
                    waiting: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Waits for one of the function's concurrency slots, or refuses when the queue is full.
    pub async fn admit(&self, function: &str) -> Result<OwnedSemaphorePermit, Throttled> {
        let gate = self.gate(function);
        if let Ok(permit) = gate.semaphore.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if gate.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue_depth {
            gate.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Throttled);
        }
        // Decrements the waiting count however this future ends (completion or cancellation).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _waiting = Waiting(&gate.waiting);
        gate.semaphore
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Throttled)
    }

    /// How many invocations of `function` wait for a slot.
    pub fn waiting(&self, function: &str) -> usize {
        self.gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(function)
            .map_or(0, |g| g.waiting.load(Ordering::Acquire))
    }

    /// The pool for `key` with `digest`, if one exists; an existing pool with another digest is
    /// retired (its configuration is outdated).
    pub fn existing(&self, key: &PoolKey, digest: &str) -> Option<Arc<Pool>> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        match pools.get(key) {
            Some(pool) if pool.digest == digest => Some(pool.clone()),
            Some(_) => {
                if let Some(old) = pools.remove(key) {
                    old.retire();
                }
                None
            }
            None => None,
        }
    }

    /// Installs a pool for `key` (or returns the one another invocation installed meanwhile).
    pub fn install(&self, key: PoolKey, digest: String, spec: Arc<SandboxSpec>) -> Arc<Pool> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = pools.get(&key)
            && pool.digest == digest
        {
            return pool.clone();
        }
        let pool = Arc::new(Pool {
            digest,
            spec,
            idle: Mutex::new(Vec::new()),
            retired: AtomicBool::new(false),
        });
        if let Some(old) = pools.insert(key, pool.clone()) {
            old.retire();
        }
        pool
    }

    /// Runs `invocation` in a warm process of `pool` or a new one.
    pub async fn run(
        &self,
        key: &PoolKey,
        pool: &Arc<Pool>,
        invocation: Invocation,
    ) -> std::io::Result<Completed> {
        // Counted as busy from before a new process starts, so that a sweep meanwhile does not
        // forget the pool the process will return to.
        self.mark_busy(key, 1);
        // Returns the process to the pool (or kills it) whatever happens to this future. If the
        // future is dropped while the invocation runs (the Invoke caller went away), the process
        // is still busy with it: returning it to the idle pool would hand the next invocation to
        // a process that has not finished this one, so it is killed instead.
        struct Lease<'a> {
            pools: &'a Pools,
            key: &'a PoolKey,
            pool: &'a Arc<Pool>,
            sandbox: Option<Arc<Sandbox>>,
            finished: bool,
        }
        impl Drop for Lease<'_> {
            fn drop(&mut self) {
                if let Some(sandbox) = self.sandbox.take() {
                    if self.finished {
                        self.pool.put_back(sandbox);
                    } else {
                        sandbox.kill();
                    }
                }
                self.pools.mark_busy(self.key, -1);
            }
        }
        let mut lease = Lease {
            pools: self,
            key,
            pool,
            sandbox: None,
            finished: false,
        };
        let sandbox = match pool.take_idle() {
            Some(sandbox) => sandbox,
            None => Arc::new(Sandbox::start(pool.spec.clone()).await?),
        };
        lease.sandbox = Some(sandbox.clone());
        let completed = sandbox.invoke(invocation).await;
        lease.finished = true;
        drop(lease);
        Ok(completed)
    }

    fn mark_busy(&self, key: &PoolKey, delta: isize) {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let n = busy.entry(key.clone()).or_insert(0);
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            busy.remove(key);
        }
    }

    /// Retires every pool of `function` (it was deleted or its code changed everywhere).
    pub fn retire_function(&self, function: &str) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<PoolKey> = pools
            .keys()
            .filter(|(f, _)| f == function)
            .cloned()
            .collect();
        for key in keys {
            if let Some(pool) = pools.remove(&key) {
                pool.retire();
            }
        }
    }

    /// Kills processes idle longer than `idle_timeout` and forgets empty, unused pools.
    pub fn sweep(&self, idle_timeout: Duration) {
        let Some(cutoff) = Instant::now().checked_sub(idle_timeout) else {
            return;
        };
        let busy = self.busy.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|key, pool| pool.reap(cutoff) > 0 || busy.contains_key(key));
    }

    /// Kills every process (at shutdown).
    pub fn shutdown(&self) {
        let pools = std::mem::take(&mut *self.pools.lock().unwrap_or_else(|e| e.into_inner()));
        for pool in pools.values() {
            pool.retire();
        }
    }

    /// The pool currently serving `key`, if any.
    pub fn get(&self, key: &PoolKey) -> Option<Arc<Pool>> {
        self.pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }
}
