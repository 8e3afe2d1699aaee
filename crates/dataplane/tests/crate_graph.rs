//! The crate graph's invariants, read from `cargo metadata`: the request path and the pure crates
//! (the proxy, router, policy, SigV4, model, snapshot and Lambda-event crates) never reach the
//! store, SQL or the API's web framework, through any chain of normal dependencies. Only
//! `trellis-dataplane` (and the control plane) read the store.
//!
//! Dev-dependencies do not count: a crate's tests may use a real store. Control cases check that
//! the walk finds what is there (the API does reach axum), so the test cannot pass by reading an
//! empty graph.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Crates that must stay pure.
const PURE: [&str; 7] = [
    "trellis-proxy",
    "trellis-router",
    "trellis-policy",
    "trellis-sigv4",
    "trellis-model",
    "trellis-snapshot",
    "trellis-lambda-event",
];

/// What a pure crate must not reach.
const FORBIDDEN: [&str; 3] = ["sqlx", "axum", "trellis-store"];

/// Crates that do reach a forbidden one, each with the path the walk must report (the shortest:
/// the walk is breadth-first).
const CONTROLS: [(&str, &str, &[&str]); 4] = [
    ("trellis-api", "axum", &["trellis-api", "axum"]),
    (
        "trellis-dataplane",
        "trellis-store",
        &["trellis-dataplane", "trellis-store"],
    ),
    (
        "trellis-dataplane",
        "sqlx",
        &["trellis-dataplane", "trellis-store", "sqlx"],
    ),
    ("trellis-functions", "axum", &["trellis-functions", "axum"]),
];

/// The workspace's resolved graph: package names by id, and each package's normal dependencies.
struct Graph {
    names: HashMap<String, String>,
    deps: HashMap<String, Vec<String>>,
    members: HashMap<String, String>,
}

impl Graph {
    /// Runs `cargo metadata` on the workspace, for the host platform only (other platforms'
    /// dependencies are neither built here nor downloaded).
    fn load() -> Graph {
        let cargo = env!("CARGO");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let version = Command::new(cargo)
            .arg("-vV")
            .output()
            .expect("cargo -vV runs");
        let version = String::from_utf8(version.stdout).expect("cargo -vV prints UTF-8");
        let host = version
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .expect("cargo -vV names the host");
        let out = Command::new(cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--filter-platform",
                host,
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .output()
            .expect("cargo metadata runs");
        assert!(
            out.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");

        let mut names = HashMap::new();
        let mut members = HashMap::new();
        for p in meta["packages"].as_array().expect("packages") {
            let id = p["id"].as_str().expect("package id").to_string();
            let name = p["name"].as_str().expect("package name").to_string();
            // Workspace members are the packages without a registry or git source.
            if p["source"].is_null() {
                members.insert(name.clone(), id.clone());
            }
            names.insert(id, name);
        }
        let mut deps = HashMap::new();
        for node in meta["resolve"]["nodes"].as_array().expect("resolve.nodes") {
            let id = node["id"].as_str().expect("node id").to_string();
            let normal = node["deps"]
                .as_array()
                .expect("node deps")
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .expect("dep_kinds")
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| d["pkg"].as_str().expect("dep pkg").to_string())
                .collect();
            deps.insert(id, normal);
        }
        Graph {
            names,
            deps,
            members,
        }
    }

    /// The shortest chain of normal dependencies from workspace member `from` to a package named
    /// `to`, as package names, or `None` when `from` does not reach it.
    fn path(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let start = self
            .members
            .get(from)
            .unwrap_or_else(|| panic!("{from} is not a workspace member"));
        let mut parent: HashMap<&str, &str> = HashMap::new();
        let mut queue = VecDeque::from([start.as_str()]);
        parent.insert(start, start);
        while let Some(id) = queue.pop_front() {
            if self.names[id] == to {
                let mut chain = vec![self.names[id].clone()];
                let mut at = id;
                while parent[at] != at {
                    at = parent[at];
                    chain.push(self.names[at].clone());
                }
                chain.reverse();
                return Some(chain);
            }
            for dep in self.deps.get(id).into_iter().flatten() {
                if !parent.contains_key(dep.as_str()) {
                    parent.insert(dep, id);
                    queue.push_back(dep);
                }
            }
        }
        None
    }
}

/// Checks one (crate, forbidden) pair: `want` is the path the walk must find, `None` for none.
fn check(graph: &Graph, from: &str, to: &str, want: Option<&[&str]>) -> Result<(), String> {
    let got = graph.path(from, to);
    match (got, want) {
        (None, None) => Ok(()),
        (Some(path), None) => Err(format!(
            "{from} must not depend on {to}, but reaches it through {}",
            path.join(" -> ")
        )),
        (None, Some(_)) => Err(format!(
            "{from} reaches {to} in the workspace, but the walk did not find it"
        )),
        (Some(path), Some(want)) if path != want => Err(format!(
            "{from} reaches {to} through {}, expected {}",
            path.join(" -> "),
            want.join(" -> ")
        )),
        (Some(_), Some(_)) => Ok(()),
    }
}

#[test]
fn pure_crates_reach_neither_the_store_nor_sql_nor_axum() {
    let graph = Graph::load();
    let mut failures = Vec::new();
    for from in PURE {
        for to in FORBIDDEN {
            failures.extend(check(&graph, from, to, None).err());
        }
    }
    for (from, to, path) in CONTROLS {
        failures.extend(check(&graph, from, to, Some(path)).err());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_walk_reports_the_path_to_a_forbidden_crate() {
    let graph = Graph::load();
    // As if trellis-api were required to be pure: the failure names the chain.
    let err = check(&graph, "trellis-api", "sqlx", None).unwrap_err();
    assert_eq!(
        err,
        "trellis-api must not depend on sqlx, but reaches it through trellis-api -> trellis-store -> sqlx"
    );
    // Dev-dependencies are not followed: the snapshot's benchmarks and tests use criterion.
    assert_eq!(graph.path("trellis-snapshot", "criterion"), None);
    assert!(graph.path("trellis-snapshot", "trellis-model").is_some());
}
