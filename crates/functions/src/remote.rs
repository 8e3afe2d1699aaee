//! Remote functions: invocations of functions this Trellis does not host, sent to a
//! Lambda-Invoke-compatible endpoint (`--lambda-endpoint URL`: AWS Lambda itself, another Trellis,
//! LocalStack, …), SigV4-signed for service `lambda` with credentials from the usual AWS
//! environment variables.
//!
//! One HTTP/1.1 connection per invocation (plain or TLS with the system's trust store): remote
//! invocations are the exception, and a pool would add state for little gain.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::host::{InvocationType, InvokeError, InvokeOptions, InvokeOutcome};
use crate::names::FunctionRef;

/// How long to wait for the TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Lambda's longest function timeout, plus time for the round trip.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(900 + 30);
/// Larger responses than Lambda ever sends are refused.
const MAX_REMOTE_RESPONSE: usize = 8 << 20;

/// Characters left as they are in a path segment (the unreserved set); everything else, `:`
/// included, is percent-encoded as botocore does for `{FunctionName}`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The remote endpoint and the credentials to sign with.
#[derive(Clone)]
pub struct RemoteConfig {
    pub endpoint: Uri,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Signing region when the function ARN does not name one.
    pub region: String,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl RemoteConfig {
    /// `endpoint` with credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// (optionally) `AWS_SESSION_TOKEN`. The signing region defaults to the one in an
    /// `lambda.REGION.amazonaws.com` host name, else `default_region`.
    pub fn from_env(endpoint: &str, default_region: &str) -> Result<RemoteConfig, String> {
        RemoteConfig::from_vars(endpoint, default_region, |k| std::env::var(k).ok())
    }

    /// As [`RemoteConfig::from_env`], with the credentials looked up by `var` (the server keeps
    /// them out of its environment).
    pub fn from_vars(
        endpoint: &str,
        default_region: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<RemoteConfig, String> {
        let uri: Uri = endpoint
            .parse()
            .map_err(|e| format!("--lambda-endpoint {endpoint:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(format!(
                    "--lambda-endpoint {endpoint:?} must be an http:// or https:// URL"
                ));
            }
        }
        let Some(host) = uri.host() else {
            return Err(format!("--lambda-endpoint {endpoint:?} has no host"));
        };
        let var = |k: &str| var(k).filter(|v| !v.is_empty());
        let (Some(access_key_id), Some(secret_access_key)) =
            (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(
                "--lambda-endpoint needs credentials to sign with: set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)"
                    .to_string(),
            );
        };
        let region = signing_region(host, default_region);
        Ok(RemoteConfig {
            endpoint: uri,
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
            region,
        })
    }
}

/// The region of an AWS Lambda endpoint's host name (`lambda.REGION.amazonaws.com`), else
/// `default`.
fn signing_region(host: &str, default: &str) -> String {
    host.strip_prefix("lambda.")
        .and_then(|rest| rest.split('.').next())
        .filter(|r| r.contains('-'))
        .unwrap_or(default)
        .to_string()
}

/// Sends invocations to the remote endpoint.
pub struct RemoteClient {
    config: RemoteConfig,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for RemoteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(
            "no trusted CA certificates found on this machine for an https \
                    --lambda-endpoint (set SSL_CERT_FILE)"
                .to_string(),
        );
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

impl RemoteClient {
    pub fn new(config: RemoteConfig) -> Result<RemoteClient, String> {
        let tls = if config.endpoint.scheme_str() == Some("https") {
            Some(tls_connector()?)
        } else {
            None
        };
        Ok(RemoteClient { config, tls })
    }

    pub fn endpoint(&self) -> &Uri {
        &self.config.endpoint
    }

    /// Invokes the function `target` (its qualifier goes in `Qualifier`) at the remote endpoint.
    pub async fn invoke(
        &self,
        target: &FunctionRef,
        payload: Bytes,
        options: &InvokeOptions,
    ) -> Result<InvokeOutcome, InvokeError> {
        let request = self.signed_request(target, payload, options)?;
        let fut = self.send(request);
        match tokio::time::timeout(INVOKE_TIMEOUT, fut).await {
            Ok(result) => result,
            Err(_) => Err(InvokeError::Unavailable(format!(
                "the remote Lambda endpoint {} did not answer within {} seconds",
                self.config.endpoint,
                INVOKE_TIMEOUT.as_secs()
            ))),
        }
    }

    fn signed_request(
        &self,
        target: &FunctionRef,
        payload: Bytes,
        options: &InvokeOptions,
    ) -> Result<Request<Full<Bytes>>, InvokeError> {
        // The function as the remote knows it: the full ARN when we were given one, else the
        // name (the remote resolves it in its own account and region).
        let function_name = if target.account.is_some() || target.region.is_some() {
            format!(
                "arn:{}:lambda:{}:{}:function:{}",
                target.partition.as_deref().unwrap_or("aws"),
                target.region.as_deref().unwrap_or(&self.config.region),
                target.account.as_deref().unwrap_or("000000000000"),
                target.name
            )
        } else {
            target.name.clone()
        };
        let base = self.config.endpoint.path().trim_end_matches('/');
        let mut path = format!(
            "{base}/2015-03-31/functions/{}/invocations",
            utf8_percent_encode(&function_name, SEGMENT)
        );
        if let Some(q) = &target.qualifier {
            path.push_str("?Qualifier=");
            path.push_str(&utf8_percent_encode(q, SEGMENT).to_string());
        }
        let authority = self
            .config
            .endpoint
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let url = format!(
            "{}://{authority}{path}",
            self.config.endpoint.scheme_str().unwrap_or("http")
        );
        let invocation_type = match options.invocation_type {
            InvocationType::RequestResponse => "RequestResponse",
            InvocationType::Event => "Event",
            InvocationType::DryRun => "DryRun",
        };
        let mut headers: Vec<(&str, String)> = vec![
            ("host", authority.clone()),
            ("content-type", "application/json".into()),
            ("x-amz-invocation-type", invocation_type.into()),
        ];
        if options.log_tail {
            headers.push(("x-amz-log-type", "Tail".into()));
        }
        if let Some(cc) = &options.client_context_base64 {
            headers.push(("x-amz-client-context", cc.clone()));
        }

        let region = target.region.as_deref().unwrap_or(&self.config.region);
        let identity: Identity = Credentials::new(
            &self.config.access_key_id,
            &self.config.secret_access_key,
            self.config.session_token.clone(),
            None,
            "trellis-environment",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("lambda")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| InvokeError::Internal(format!("cannot sign the remote invoke: {e}")))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(&payload),
        )
        .map_err(|e| InvokeError::Internal(format!("cannot sign the remote invoke: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| InvokeError::Internal(format!("cannot sign the remote invoke: {e}")))?
            .into_parts();

        let mut builder = Request::builder().method(Method::POST).uri(&path);
        for (name, value) in &headers {
            builder = builder.header(*name, value);
        }
        let mut request = builder
            .body(Full::new(payload))
            .map_err(|e| InvokeError::Internal(format!("cannot build the remote invoke: {e}")))?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<InvokeOutcome, InvokeError> {
        let endpoint = &self.config.endpoint;
        let host = endpoint.host().unwrap_or_default().to_string();
        let tls = self.tls.is_some();
        let port = endpoint.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            InvokeError::Unavailable(format!(
                "cannot reach the remote Lambda endpoint {endpoint}: {what}: {e}"
            ))
        };
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port)),
        )
        .await
        .map_err(|e| unavailable("connect", &e))?
        .map_err(|e| unavailable("connect", &e))?;
        let _ = tcp.set_nodelay(true);
        let response = match &self.tls {
            Some(connector) => {
                let name = rustls_pki_types::ServerName::try_from(
                    host.trim_matches(['[', ']']).to_string(),
                )
                .map_err(|e| unavailable("server name", &e))?;
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                    .await
                    .map_err(|e| unavailable("TLS handshake", &e))?
                    .map_err(|e| unavailable("TLS handshake", &e))?;
                round_trip(TokioIo::new(stream), request).await
            }
            None => round_trip(TokioIo::new(tcp), request).await,
        }
        .map_err(|e| unavailable("request", &e))?;
        outcome(response).await
    }
}

async fn round_trip<S>(
    io: TokioIo<S>,
    request: Request<Full<Bytes>>,
) -> Result<http::Response<Bytes>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string());
    let result = match response {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            Limited::new(body, MAX_REMOTE_RESPONSE)
                .collect()
                .await
                .map(|c| http::Response::from_parts(parts, c.to_bytes()))
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e),
    };
    driver.abort();
    result
}

fn header(response: &http::Response<Bytes>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_string)
}

async fn outcome(response: http::Response<Bytes>) -> Result<InvokeOutcome, InvokeError> {
    let status = response.status().as_u16();
    if response.status().is_success() {
        return Ok(InvokeOutcome {
            status,
            function_error: header(&response, "x-amz-function-error"),
            log_tail: header(&response, "x-amz-log-result"),
            executed_version: header(&response, "x-amz-executed-version"),
            payload: response.into_body(),
        });
    }
    // The remote's error, passed on as it is: the caller sees what the remote said.
    let error_type = header(&response, "x-amzn-errortype")
        .map(|t| t.split(':').next().unwrap_or_default().to_string())
        .unwrap_or_else(|| "ServiceException".to_string());
    let body = response.into_body();
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("Message"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    Err(InvokeError::Remote {
        status,
        error_type,
        message,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_regions() {
        let cases = [
            ("lambda.eu-west-1.amazonaws.com", "eu-west-1"),
            ("lambda.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
            ("127.0.0.1", "us-west-2"),
            ("lambda.internal", "us-west-2"),
            ("trellis.example.com", "us-west-2"),
        ];
        for (host, region) in cases {
            assert_eq!(signing_region(host, "us-west-2"), region, "{host}");
        }
    }

    #[test]
    fn function_names_are_encoded_like_botocore() {
        assert_eq!(
            utf8_percent_encode("arn:aws:lambda:us-west-2:111122223333:function:f", SEGMENT)
                .to_string(),
            "arn%3Aaws%3Alambda%3Aus-west-2%3A111122223333%3Afunction%3Af"
        );
        assert_eq!(
            utf8_percent_encode("my_fn-1", SEGMENT).to_string(),
            "my_fn-1"
        );
        assert_eq!(
            utf8_percent_encode("$LATEST", SEGMENT).to_string(),
            "%24LATEST"
        );
    }
}
