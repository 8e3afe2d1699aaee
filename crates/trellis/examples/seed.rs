//! `seed`: loads a large configuration into a running `trellis serve` through its Lattice API, for
//! the scale benchmark (`bench/run`'s scale step). Not part of the `trellis` binary.
//!
//! Shape (issue 5's 10,000-service configuration at `--services 10000`): one service network;
//! per service an IP target group of ten targets, the service, one HTTP listener on
//! `--listener-port` whose default action forwards to the group, ten rules with a path prefix and
//! a header match each (forwarding to the group), and the service's association with the
//! network — 15 API calls per service. Targets are `127.x.y.z:--target-port`, so health checks
//! (Lattice's defaults unless `--no-health-checks`) are refused at once on loopback.
//!
//! Every call is a real SigV4-signed REST-JSON request (the `aws-sigv4` signer the SDKs use) over
//! HTTP/1.1 keep-alive connections; `--concurrency` services are created at once. The server's
//! account quotas must allow the size (`trellis serve --quota services-per-region=N …`).
//! Prints one JSON line: calls made, seconds taken, and one rule to update for a propagation
//! sample (`sample`: service, listener and rule IDs).
//!
//! ```sh
//! cargo run --release -p trellis --example seed -- --endpoint http://127.0.0.1:9460 \
//!     --services 10000 --listener-port 8080
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const USAGE: &str = "usage: seed --endpoint URL --services N [--listener-port P] [--target-port P] \
[--concurrency C] [--no-health-checks] [--region R]  (credentials: TRELLIS_ROOT_ACCESS_KEY_ID, \
TRELLIS_ROOT_SECRET_ACCESS_KEY)";
const RULES: u32 = 10;
const TARGETS: u32 = 10;

struct Args {
    endpoint: String,
    services: u32,
    listener_port: u16,
    target_port: u16,
    concurrency: usize,
    health_checks: bool,
    region: String,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        endpoint: String::new(),
        services: 0,
        listener_port: 8080,
        target_port: 1,
        concurrency: 8,
        health_checks: true,
        region: "us-west-2".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--endpoint" => a.endpoint = value()?.trim_end_matches('/').to_string(),
            "--services" => a.services = num(value()?)? as u32,
            "--listener-port" => a.listener_port = num(value()?)? as u16,
            "--target-port" => a.target_port = num(value()?)? as u16,
            "--concurrency" => a.concurrency = num(value()?)?.max(1) as usize,
            "--no-health-checks" => a.health_checks = false,
            "--region" => a.region = value()?,
            _ => return Err(USAGE.into()),
        }
    }
    if a.endpoint.is_empty() || a.services == 0 {
        return Err(USAGE.into());
    }
    Ok(a)
}

/// A SigV4-signing Lattice client over one keep-alive connection pool.
struct Lattice {
    http: Client<HttpConnector, Full<Bytes>>,
    endpoint: String,
    authority: String,
    region: String,
    identity: Identity,
    calls: AtomicU64,
}

impl Lattice {
    async fn call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let payload = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let bytes = self
            .send(method, path, "vpc-lattice", "application/json", payload)
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{method} {path}: {e}"))
    }

    /// A VPC for the target groups (`aws ec2 create-vpc`: Lattice's `vpcIdentifier` must name
    /// one): its ID, read from EC2's XML answer.
    async fn create_vpc(&self) -> Result<String, String> {
        let form = b"Action=CreateVpc&Version=2016-11-15&CidrBlock=10.0.0.0%2F16".to_vec();
        let bytes = self
            .send(
                "POST",
                "/",
                "ec2",
                "application/x-www-form-urlencoded; charset=utf-8",
                form,
            )
            .await?;
        let text = String::from_utf8_lossy(&bytes);
        let start = text
            .find("<vpcId>")
            .ok_or_else(|| format!("CreateVpc: no vpcId in {text}"))?
            + "<vpcId>".len();
        let end = text[start..]
            .find('<')
            .ok_or_else(|| format!("CreateVpc: {text}"))?;
        Ok(text[start..start + end].to_string())
    }

    /// One SigV4-signed request for `service`; the body of a 2xx answer.
    async fn send(
        &self,
        method: &str,
        path: &str,
        service: &str,
        content_type: &str,
        payload: Vec<u8>,
    ) -> Result<Bytes, String> {
        let url = format!("{}{path}", self.endpoint);
        let headers = [
            ("host", self.authority.as_str()),
            ("content-type", content_type),
        ];
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(&payload),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        let mut req = http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        for (k, v) in instructions.headers() {
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| e.to_string())?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?
            .to_bytes();
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !status.is_success() {
            return Err(format!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        Ok(bytes)
    }
}

fn id(v: &Value) -> Result<String, String> {
    v["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no id in {v}"))
}

/// Target `t` of service `n`: a distinct loopback address per target.
fn target_ip(n: u32, t: u32) -> String {
    let k = n * TARGETS + t;
    format!("127.{}.{}.{}", 1 + (k >> 16), (k >> 8) & 0xff, k & 0xff)
}

/// Creates service `n` with everything it has; returns (service, listener, last rule) IDs.
async fn service(
    api: &Lattice,
    a: &Args,
    sn: &str,
    vpc: &str,
    n: u32,
) -> Result<(String, String, String), String> {
    let mut config = json!({"port": a.target_port, "protocol": "HTTP", "vpcIdentifier": vpc});
    if !a.health_checks {
        config["healthCheck"] = json!({"enabled": false});
    }
    let tg = id(&api
        .call(
            "POST",
            "/targetgroups",
            json!({"name": format!("scale-{n}"), "type": "IP", "config": config}),
        )
        .await?)?;
    let targets: Vec<Value> = (0..TARGETS)
        .map(|t| json!({"id": target_ip(n, t), "port": a.target_port}))
        .collect();
    api.call(
        "POST",
        &format!("/targetgroups/{tg}/registertargets"),
        json!({ "targets": targets }),
    )
    .await?;
    let svc = id(&api
        .call("POST", "/services", json!({"name": format!("scale-{n}")}))
        .await?)?;
    let forward =
        json!({"forward": {"targetGroups": [{"targetGroupIdentifier": tg, "weight": 100}]}});
    let listener = id(&api
        .call(
            "POST",
            &format!("/services/{svc}/listeners"),
            json!({"name": "http", "protocol": "HTTP", "port": a.listener_port,
                   "defaultAction": forward}),
        )
        .await?)?;
    let mut rule = String::new();
    for r in 1..=RULES {
        rule = id(&api
            .call(
                "POST",
                &format!("/services/{svc}/listeners/{listener}/rules"),
                json!({"name": format!("tenant-{r}"), "priority": r, "action": forward,
                       "match": {"httpMatch": {
                           "pathMatch": {"match": {"prefix": format!("/api/v{r}")}},
                           "headerMatches": [{"name": "x-tenant",
                                              "match": {"exact": format!("tenant-{r}")}}]}}}),
            )
            .await?)?;
    }
    api.call(
        "POST",
        "/servicenetworkserviceassociations",
        json!({"serviceNetworkIdentifier": sn, "serviceIdentifier": svc}),
    )
    .await?;
    Ok((svc, listener, rule))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let a = match args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(a).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(a: Arc<Args>) -> Result<(), String> {
    let key = std::env::var("TRELLIS_ROOT_ACCESS_KEY_ID").map_err(|_| USAGE.to_string())?;
    let secret = std::env::var("TRELLIS_ROOT_SECRET_ACCESS_KEY").map_err(|_| USAGE.to_string())?;
    let authority = a
        .endpoint
        .strip_prefix("http://")
        .ok_or("--endpoint must be http://HOST:PORT")?
        .to_string();
    let api = Arc::new(Lattice {
        http: Client::builder(TokioExecutor::new()).build_http(),
        endpoint: a.endpoint.clone(),
        authority,
        region: a.region.clone(),
        identity: Credentials::new(key, secret, None, None, "seed").into(),
        calls: AtomicU64::new(0),
    });
    let started = Instant::now();
    let sn = id(&api
        .call("POST", "/servicenetworks", json!({"name": "scale"}))
        .await?)?;
    let vpc = api.create_vpc().await?;
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..a.concurrency {
        let (api, a, sn, vpc, next) = (
            api.clone(),
            a.clone(),
            sn.clone(),
            vpc.clone(),
            next.clone(),
        );
        workers.spawn(async move {
            let mut last = None;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= u64::from(a.services) {
                    return Ok::<_, String>(last);
                }
                last = Some(service(&api, &a, &sn, &vpc, n as u32).await?);
                if (n + 1) % 1000 == 0 {
                    eprintln!(
                        "seed: {} services in {:.0} s",
                        n + 1,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        });
    }
    let mut sample = None;
    while let Some(done) = workers.join_next().await {
        if let Some(s) = done.map_err(|e| e.to_string())?? {
            sample = Some(s);
        }
    }
    let (svc, listener, rule) = sample.ok_or("no service was created")?;
    println!(
        "{}",
        json!({
            "services": a.services,
            "calls": api.calls.load(Ordering::Relaxed),
            "seconds": started.elapsed().as_secs_f64(),
            "serviceNetwork": sn,
            "sample": {"service": svc, "listener": listener, "rule": rule},
        })
    );
    Ok(())
}
