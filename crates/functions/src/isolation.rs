//! Runtime process isolation: every runtime process runs as an unprivileged uid of its own, in its
//! own PID, mount, IPC and UTS namespaces (bubblewrap), inside a cgroup that bounds its memory
//! (`MemorySize`) and process count and through which every process it started is killed.
//!
//! # The launch chain
//!
//! ```text
//! sh -c 'read _ && exec "$@" </dev/null'      held until the server put its pid in the cgroup
//!   └ bwrap (as root, no user namespace)         new PID/mount/IPC/UTS(/cgroup) namespaces; binds
//!       └ setpriv --reuid=U --regid=U …          drops to the sandbox's uid, no capabilities left
//!           └ python3 / node / bootstrap         sees /var/task (its code, read-only), /var/runtime,
//!                                                /usr, /etc, the interpreter's installation, /tmp
//! ```
//!
//! bwrap runs as root (not in a user namespace) so that it can bind the interpreter's
//! installation even when it lives under a directory the sandbox uid cannot traverse
//! (`/root/.pyenv`); the uid switch happens inside, after the mounts, with `setpriv`, which also
//! sets `no_new_privs` and clears every capability set. The sandbox's uid `U` is a real host uid
//! (`--function-uid-base` + a slot never shared by two live sandboxes), so the kernel's ordinary
//! permission checks apply: it cannot read the data dir (0700, root), another process's `/proc`
//! (not even visible in its PID namespace), or write its code (a read-only bind of a root-owned
//! tree). When the outer bwrap dies (killed on timeout or shutdown), `--die-with-parent` kills the
//! namespace's init and with it every process of the namespace, `setsid` children included; the
//! cgroup is swept as well.
//!
//! The network namespace stays the host's: functions need the network, and their Runtime API is
//! a TCP port on 127.0.0.1 that only connections owned by the sandbox's uid may use
//! ([`crate::runtime_api`]).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The default first uid of sandboxes: far above any uid a distribution hands out.
pub const DEFAULT_UID_BASE: u32 = 2_000_000_000;
/// How many uids (and so concurrently live sandboxes) the range holds.
pub const UID_COUNT: u32 = 65_536;
/// The default process (and thread) limit of one sandbox: Lambda's limit.
pub const DEFAULT_PIDS_MAX: u32 = 1024;
/// Size of each sandbox's `/tmp` (a tmpfs, charged to its memory cgroup): Lambda's default
/// ephemeral storage.
pub const TMP_SIZE_BYTES: u64 = 512 * 1024 * 1024;

/// Where the sandbox sees its code and Trellis's bootstrap scripts.
pub const TASK_ROOT: &str = "/var/task";
pub const RUNTIME_ROOT: &str = "/var/runtime";

/// `--function-isolation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IsolationMode {
    /// Each runtime process in its own sandbox (the default); functions are refused when the
    /// host cannot provide one.
    #[default]
    Sandbox,
    /// Runtime processes run as the server's user, unconfined. Development only.
    None,
}

/// What the operator configured.
#[derive(Clone, Debug)]
pub struct IsolationConfig {
    pub mode: IsolationMode,
    pub uid_base: u32,
    pub pids_max: u32,
}

impl Default for IsolationConfig {
    fn default() -> Self {
        IsolationConfig {
            mode: IsolationMode::Sandbox,
            uid_base: DEFAULT_UID_BASE,
            pids_max: DEFAULT_PIDS_MAX,
        }
    }
}

/// The cgroup hierarchy sandboxes are created in.
#[derive(Clone, Debug)]
enum CgroupRoot {
    /// cgroup v2: one dir with `memory` and `pids` enabled for its children.
    V2(PathBuf),
    /// cgroup v1: the dirs under the `memory` and `pids` hierarchies.
    V1 { memory: PathBuf, pids: PathBuf },
}

/// The host's ability to isolate runtime processes, found once at start.
#[derive(Debug)]
pub struct Isolation {
    pub config: IsolationConfig,
    /// Why sandboxes cannot be made here (mode `Sandbox` only); `None` when they can.
    pub unavailable: Option<String>,
    bwrap: PathBuf,
    setpriv: PathBuf,
    cgroups: Option<CgroupRoot>,
    /// Read-only binds (host path = sandbox path) besides the code and the runtime dir.
    binds: Vec<PathBuf>,
    /// Host paths that are symlinks (`/bin` → `usr/bin` on merged-/usr systems).
    symlinks: Vec<(PathBuf, PathBuf)>,
    uids: Mutex<BTreeSet<u32>>,
    /// Every sandbox cgroup created, to sweep at shutdown (the exit tasks that remove them do
    /// not outlive the server).
    live: Mutex<Vec<std::sync::Weak<Cgroup>>>,
    python_exe: Option<PathBuf>,
    node_exe: Option<PathBuf>,
}

/// The system dirs a runtime needs: programs, libraries, `/etc` (resolver, CA certificates).
const SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"];

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The interpreters' executables and installation dirs, which may live outside `/usr` (pyenv,
/// nvm, a venv), found by asking the interpreter itself.
struct Interpreters {
    python: Option<PathBuf>,
    node: Option<PathBuf>,
    dirs: Vec<PathBuf>,
}

fn interpreters(python: &str, node: &str) -> Interpreters {
    let mut found = Interpreters {
        python: None,
        node: None,
        dirs: Vec::new(),
    };
    let dirs = &mut found.dirs;
    if let Ok(out) = std::process::Command::new(python)
        .args([
            "-c",
            "import sys; print(sys.executable); print(sys.prefix); print(sys.base_prefix); \
             print(sys.exec_prefix)",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        && out.status.success()
    {
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut lines = text.lines();
        found.python = lines.next().map(|l| PathBuf::from(l.trim()));
        for line in lines {
            dirs.push(PathBuf::from(line.trim()));
        }
    }
    if let Some(node) = find_program(node).and_then(|p| std::fs::canonicalize(p).ok()) {
        if let Some(prefix) = node.parent().and_then(Path::parent) {
            dirs.push(prefix.to_path_buf());
        }
        found.node = Some(node);
    }
    // pyenv's shims (`python3` on PATH is a shell script) need the whole pyenv root.
    if let Some(root) = std::env::var_os("PYENV_ROOT") {
        dirs.push(PathBuf::from(root));
    }
    found
}

/// Whether `path` is `/usr`-like already bound, or a dir below one.
fn covered(path: &Path, binds: &[PathBuf]) -> bool {
    binds.iter().any(|b| path.starts_with(b))
}

impl Isolation {
    /// Finds what the host provides. Never fails: what is missing is recorded in
    /// [`Isolation::unavailable`] and reported by the caller.
    pub fn probe(config: IsolationConfig, python: &str, node: &str) -> Isolation {
        let mut isolation = Isolation {
            config,
            unavailable: None,
            bwrap: PathBuf::from("bwrap"),
            setpriv: PathBuf::from("setpriv"),
            cgroups: None,
            binds: Vec::new(),
            symlinks: Vec::new(),
            uids: Mutex::new(BTreeSet::new()),
            live: Mutex::new(Vec::new()),
            python_exe: None,
            node_exe: None,
        };
        if isolation.config.mode == IsolationMode::None {
            return isolation;
        }
        let mut missing = Vec::new();
        if !rustix::process::geteuid().is_root() {
            missing.push("root (the server must run as root to start sandboxes)".to_string());
        }
        match find_program("bwrap") {
            Some(p) => isolation.bwrap = p,
            None => missing.push("bwrap (install bubblewrap)".to_string()),
        }
        match find_program("setpriv") {
            Some(p) => isolation.setpriv = p,
            None => missing.push("setpriv (install util-linux)".to_string()),
        }
        if missing.is_empty() {
            match find_cgroups() {
                Ok(root) => isolation.cgroups = Some(root),
                Err(e) => missing.push(format!("writable cgroups with memory and pids ({e})")),
            }
        }
        if u64::from(isolation.config.uid_base) + u64::from(UID_COUNT) >= u64::from(u32::MAX) {
            missing.push("a --function-uid-base that leaves room for 65536 uids".to_string());
        }
        let mut binds: Vec<PathBuf> = Vec::new();
        for dir in SYSTEM_DIRS {
            let path = Path::new(dir);
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(path) {
                        isolation.symlinks.push((path.to_path_buf(), target));
                    }
                }
                Ok(m) if m.is_dir() => binds.push(path.to_path_buf()),
                _ => {}
            }
        }
        let found = interpreters(python, node);
        isolation.python_exe = found.python;
        isolation.node_exe = found.node;
        for dir in found.dirs {
            // Never `/` itself (a PYENV_ROOT or prefix of `/` would show the whole host).
            if dir.is_absolute()
                && dir.components().count() >= 2
                && dir.is_dir()
                && !covered(&dir, &binds)
            {
                binds.push(dir);
            }
        }
        binds.sort();
        binds.dedup();
        isolation.binds = binds;
        if !missing.is_empty() {
            isolation.unavailable = Some(missing.join(", "));
        }
        isolation
    }

    /// The Python interpreter's real path (not a pyenv shim), when it could be asked.
    pub fn python_exe(&self) -> Option<PathBuf> {
        self.python_exe.clone()
    }

    /// The `node` executable's real path.
    pub fn node_exe(&self) -> Option<PathBuf> {
        self.node_exe.clone()
    }

    /// Read-only binds a sandbox gets besides its code (for the docs and the start-up log).
    pub fn binds(&self) -> &[PathBuf] {
        &self.binds
    }

    /// Whether runtime processes are sandboxed.
    pub fn enabled(&self) -> bool {
        self.config.mode == IsolationMode::Sandbox
    }

    /// A uid no live sandbox has; returned to the range when the lease drops.
    pub fn lease_uid(self: &std::sync::Arc<Self>) -> Option<UidLease> {
        let mut used = self.uids.lock().unwrap_or_else(|e| e.into_inner());
        let uid =
            (self.config.uid_base..self.config.uid_base + UID_COUNT).find(|u| !used.contains(u))?;
        used.insert(uid);
        Some(UidLease {
            uid,
            isolation: self.clone(),
        })
    }

    /// The command that starts `program args` in a sandbox as `uid`, with `code_dir` at
    /// [`TASK_ROOT`] and `runtime_dir` at [`RUNTIME_ROOT`]. Its first line of stdin releases it.
    pub fn command(
        &self,
        uid: u32,
        code_dir: &Path,
        runtime_dir: &Path,
        program: &Path,
        args: &[PathBuf],
    ) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("/bin/sh");
        // The shell waits for the server to have put it into its cgroup; everything it execs
        // and every process those start are then in the cgroup.
        cmd.arg("-c")
            .arg("read _ && exec \"$@\" </dev/null")
            .arg("sh")
            .arg(&self.bwrap);
        let uid_s = uid.to_string();
        let tmp_size = TMP_SIZE_BYTES.to_string();
        cmd.args([
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "sandbox",
        ]);
        // bwrap (privileged) creates missing parents 0700, which the sandbox uid could not
        // traverse: create every parent explicitly, world-readable.
        let mut dests: Vec<PathBuf> = self.binds.clone();
        dests.push(PathBuf::from(TASK_ROOT));
        dests.push(PathBuf::from(RUNTIME_ROOT));
        let mut parents = BTreeSet::new();
        for d in &dests {
            for a in d.ancestors().skip(1) {
                if a != Path::new("/") && !dests.iter().any(|x| x == a) {
                    parents.insert(a.to_path_buf());
                }
            }
        }
        for p in &parents {
            cmd.args(["--perms", "0755", "--dir"]).arg(p);
        }
        for b in &self.binds {
            cmd.arg("--ro-bind").arg(b).arg(b);
        }
        for (link, target) in &self.symlinks {
            cmd.arg("--symlink").arg(target).arg(link);
        }
        cmd.args(["--proc", "/proc", "--dev", "/dev"]);
        cmd.args(["--perms", "1777", "--size", &tmp_size, "--tmpfs", "/tmp"]);
        cmd.arg("--ro-bind").arg(code_dir).arg(TASK_ROOT);
        cmd.arg("--ro-bind").arg(runtime_dir).arg(RUNTIME_ROOT);
        cmd.args(["--chdir", TASK_ROOT]);
        // The uid switch happens inside, after the mounts: setpriv needs these three, and
        // drops them (and every other capability) itself.
        cmd.args([
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
            "--cap-add",
            "CAP_SETPCAP",
            "--",
        ]);
        cmd.arg(&self.setpriv).args([
            &format!("--reuid={uid_s}"),
            &format!("--regid={uid_s}"),
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]);
        cmd.arg(program).args(args);
        cmd
    }

    /// Creates the cgroup of one sandbox with its limits.
    pub fn cgroup(&self, id: &str, memory_mb: u32) -> std::io::Result<std::sync::Arc<Cgroup>> {
        let cgroup = std::sync::Arc::new(self.create_cgroup(id, memory_mb)?);
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|w| w.strong_count() > 0);
        live.push(std::sync::Arc::downgrade(&cgroup));
        Ok(cgroup)
    }

    /// Kills every sandbox's processes and removes their cgroups (at shutdown; blocks briefly).
    pub fn shutdown(&self) {
        let live: Vec<_> =
            std::mem::take(&mut *self.live.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .filter_map(|w| w.upgrade())
                .collect();
        for cgroup in &live {
            cgroup.kill_all();
        }
        for cgroup in &live {
            cgroup.remove_blocking();
        }
    }

    fn create_cgroup(&self, id: &str, memory_mb: u32) -> std::io::Result<Cgroup> {
        let Some(root) = &self.cgroups else {
            return Err(std::io::Error::other("no cgroups"));
        };
        let memory = u64::from(memory_mb) * 1024 * 1024;
        let pids = self.config.pids_max.to_string();
        let name = format!("sandbox-{id}");
        let dirs = match root {
            CgroupRoot::V2(dir) => {
                let d = dir.join(&name);
                std::fs::create_dir(&d)?;
                let g = Cgroup {
                    dirs: vec![d.clone()],
                    v2: true,
                };
                write(&d.join("memory.max"), &memory.to_string())?;
                // Swap would let a function exceed its memory unseen.
                let _ = write(&d.join("memory.swap.max"), "0");
                write(&d.join("pids.max"), &pids)?;
                return Ok(g);
            }
            CgroupRoot::V1 { memory: m, pids: p } => vec![m.join(&name), p.join(&name)],
        };
        for d in &dirs {
            std::fs::create_dir(d)?;
        }
        let g = Cgroup { dirs, v2: false };
        write(
            &g.dirs[0].join("memory.limit_in_bytes"),
            &memory.to_string(),
        )?;
        // memsw (memory + swap) is present only when swap accounting is on.
        let memsw = g.dirs[0].join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            write(&memsw, &memory.to_string())?;
        }
        write(&g.dirs[1].join("pids.max"), &pids)?;
        Ok(g)
    }
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The cgroup dir of this process in the hierarchy that has `controller` (v1), or in the
/// unified hierarchy (`controller` empty).
fn own_cgroup(controller: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if controller.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        matches.then(|| path.to_string())
    })
}

/// Removes `sandbox-*` cgroups under `dir` left by a server that ended without removing them
/// (killed): empty ones (rmdir fails on a cgroup with processes) older than a minute, so that a
/// cgroup another server has just created is left alone.
fn sweep_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = std::time::SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(60));
        if old && entry.file_name().to_string_lossy().starts_with("sandbox-") {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// Finds (and prepares) the dir sandbox cgroups are created in: cgroup v2 when it has the
/// `memory` and `pids` controllers, else the v1 `memory` and `pids` hierarchies. Sandboxes go
/// below a `trellis-sandboxes` dir beside the server's own cgroup's children, so that limits
/// set on the server's cgroup bound them too.
fn find_cgroups() -> Result<CgroupRoot, String> {
    let base = Path::new("/sys/fs/cgroup");
    // Pure v2: /sys/fs/cgroup is itself the unified hierarchy.
    let v2_controllers = std::fs::read_to_string(base.join("cgroup.controllers")).ok();
    if let Some(controllers) = v2_controllers {
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        if !(has("memory") && has("pids")) {
            return Err("the cgroup v2 hierarchy lacks the memory or pids controller".into());
        }
        let own = own_cgroup("").unwrap_or_else(|| "/".into());
        let own_dir = base.join(own.trim_start_matches('/'));
        // v2 forbids processes in a cgroup whose children have controllers: the server moves
        // itself into a leaf (`trellis-server`) first, then enables memory and pids below.
        let server = own_dir.join("trellis-server");
        let sandboxes = own_dir.join("trellis-sandboxes");
        if own != "/" {
            std::fs::create_dir_all(&server).map_err(|e| format!("{}: {e}", server.display()))?;
            let procs = std::fs::read_to_string(own_dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines() {
                let _ = write(&server.join("cgroup.procs"), pid);
            }
        }
        write(&own_dir.join("cgroup.subtree_control"), "+memory +pids")
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&sandboxes).map_err(|e| format!("{}: {e}", sandboxes.display()))?;
        write(&sandboxes.join("cgroup.subtree_control"), "+memory +pids")
            .map_err(|e| e.to_string())?;
        sweep_stale(&sandboxes);
        return Ok(CgroupRoot::V2(sandboxes));
    }
    let mut v1 = Vec::new();
    for controller in ["memory", "pids"] {
        let mount = base.join(controller);
        if !mount.join("cgroup.procs").exists() {
            return Err(format!(
                "no cgroup v1 {controller} hierarchy at {}",
                mount.display()
            ));
        }
        let own = own_cgroup(controller).unwrap_or_else(|| "/".into());
        let dir = mount
            .join(own.trim_start_matches('/'))
            .join("trellis-sandboxes");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        sweep_stale(&dir);
        v1.push(dir);
    }
    if let Some(memory) = v1.first() {
        // Limits of the parent apply to children only with hierarchical accounting.
        let _ = write(&memory.join("memory.use_hierarchy"), "1");
    }
    let pids = v1.pop().unwrap_or_default();
    let memory = v1.pop().unwrap_or_default();
    Ok(CgroupRoot::V1 { memory, pids })
}

/// A sandbox's uid, free again when dropped.
#[derive(Debug)]
pub struct UidLease {
    pub uid: u32,
    isolation: std::sync::Arc<Isolation>,
}

impl Drop for UidLease {
    fn drop(&mut self) {
        self.isolation
            .uids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.uid);
    }
}

/// The cgroup of one sandbox: its limits, its accounting, and the way to kill everything in it.
#[derive(Debug)]
pub struct Cgroup {
    /// v2: one dir; v1: the memory dir, then the pids dir.
    dirs: Vec<PathBuf>,
    v2: bool,
}

impl Cgroup {
    /// Puts `pid` (and so everything it will start) into the cgroup.
    pub fn add(&self, pid: u32) -> std::io::Result<()> {
        for d in &self.dirs {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for d in &self.dirs {
            if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// SIGKILLs every process in the cgroup, a few rounds to catch ones forked meanwhile (the
    /// PID namespace's end catches the rest). Returns whether it is empty.
    pub fn kill_all(&self) -> bool {
        if self.v2 {
            // cgroup.kill (Linux 5.14+) kills atomically, forks included.
            let _ = write(&self.dirs[0].join("cgroup.kill"), "1");
        }
        for _ in 0..8 {
            let pids = self.pids();
            if pids.is_empty() {
                return true;
            }
            for pid in pids {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
        self.pids().is_empty()
    }

    /// Peak memory use of the sandbox in bytes.
    pub fn peak_memory(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        std::fs::read_to_string(self.dirs[0].join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the kernel's OOM killer killed a process of the sandbox (it hit `MemorySize`).
    pub fn oom_killed(&self) -> bool {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(self.dirs[0].join(file))
            .map(|text| {
                text.lines().any(|l| {
                    let mut parts = l.split_whitespace();
                    parts.next() == Some("oom_kill")
                        && parts.next().and_then(|n| n.parse::<u64>().ok()) > Some(0)
                })
            })
            .unwrap_or(false)
    }

    fn try_remove(&self) -> bool {
        self.kill_all();
        self.dirs
            .iter()
            .all(|d| std::fs::remove_dir(d).is_ok() || !d.exists())
    }

    /// Kills what is left and removes the cgroup dirs, retrying briefly while the kernel
    /// finishes tearing the processes down.
    pub async fn remove(&self) {
        for _ in 0..50 {
            if self.try_remove() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tracing::warn!(cgroup = ?self.dirs, "could not remove a sandbox cgroup");
    }

    /// [`Cgroup::remove`] for shutdown, outside any async context's care.
    pub fn remove_blocking(&self) {
        for _ in 0..50 {
            if self.try_remove() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        tracing::warn!(cgroup = ?self.dirs, "could not remove a sandbox cgroup");
    }
}
