//! The CLI's HTTP client: one request at a time to the admin API over TCP, to the operator socket, or — when the
//! server is stopped — to the operator router run in-process on the store directly.
//!
//! hyper does the HTTP; this module only picks the transport and turns the answer into JSON or an error.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tower::ServiceExt;

/// Where requests go.
pub enum Transport {
    /// The tenant API, with an access key.
    Tcp { addr: SocketAddr, key: String },
    /// The tenant API over HTTPS, trusting the CA certificate(s) in `ca` for `host`.
    Tls { addr: SocketAddr, host: String, key: String, ca: PathBuf },
    /// The operator socket of a running server.
    Unix(PathBuf),
    /// The operator router over the store, in this process (the server is stopped).
    InProcess(axum::Router),
}

/// An answer: status and body (JSON when it parses, text otherwise).
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
}

impl Transport {
    /// Sends one request; `body` is JSON (or raw text when `raw` is set).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<Answer> {
        let mut builder = Request::builder().method(method).uri(path).header("host", "vpcdns");
        if let Transport::Tcp { key, .. } | Transport::Tls { key, .. } = self {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let request = builder.body(body.unwrap_or_else(Body::empty)).context("cannot build the request")?;
        let response = match self {
            Transport::Tcp { addr, .. } => {
                let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
                    Failure::Unreachable(format!(
                        "cannot reach the admin API at {addr}: {e} (is vpcdns serving with [store]?)"
                    ))
                })?;
                exchange(TokioIo::new(stream), request).await?
            }
            Transport::Tls { addr, host, ca, .. } => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| Failure::Unreachable(format!("cannot reach the admin API at {addr}: {e}")))?;
                let connector = tls_connector(ca)?;
                let name = rustls_pki_types::ServerName::try_from(host.clone())
                    .with_context(|| format!("{host:?} is not a server name"))?;
                let tls = connector.connect(name, stream).await.with_context(|| format!("TLS with {addr} failed"))?;
                exchange(TokioIo::new(tls), request).await?
            }
            Transport::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await.map_err(|e| {
                    Failure::Unreachable(format!("cannot reach the operator socket {}: {e}", path.display()))
                })?;
                exchange(TokioIo::new(stream), request).await?
            }
            Transport::InProcess(router) => {
                let response = router.clone().oneshot(request).await.context("in-process request failed")?;
                let (parts, body) = response.into_parts();
                let bytes = body.collect().await.context("cannot read the answer")?.to_bytes();
                (parts.status, bytes.to_vec())
            }
        };
        let (status, bytes) = response;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, body, text })
    }
}

/// The most pages a list command follows (10,000 items each): far beyond any account's quotas.
const MAX_PAGES: usize = 1000;

impl Transport {
    /// A GET of a list, every page of it (`next_cursor`): each page's lists appended to the first's.
    pub async fn get_all(&self, path: &str, headers: &[(&str, String)]) -> anyhow::Result<Answer> {
        let mut answer = self.send(Method::GET, path, None, headers).await?;
        for _ in 1..MAX_PAGES {
            let Some(cursor) = answer.body.get("next_cursor").and_then(Value::as_str).map(str::to_string) else {
                break;
            };
            let joiner = if path.contains('?') { '&' } else { '?' };
            let next = self.send(Method::GET, &format!("{path}{joiner}cursor={cursor}"), None, headers).await?;
            if !next.status.is_success() {
                return Ok(next);
            }
            let (Value::Object(all), Value::Object(page)) = (&mut answer.body, next.body) else { break };
            all.remove("next_cursor");
            for (field, value) in page {
                match (all.get_mut(&field), value) {
                    (Some(Value::Array(items)), Value::Array(more)) => items.extend(more),
                    (_, value) if field == "next_cursor" => {
                        all.insert(field, value);
                    }
                    _ => {}
                }
            }
        }
        if let Value::Object(all) = &mut answer.body {
            all.remove("next_cursor");
        }
        Ok(answer)
    }
}

async fn exchange<I>(io: I, request: Request<Body>) -> anyhow::Result<(StatusCode, Vec<u8>)>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.context("HTTP handshake failed")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await.context("the request failed")?;
    let status = response.status();
    let bytes = response.into_body().collect().await.context("cannot read the answer")?.to_bytes();
    Ok((status, bytes.to_vec()))
}

/// The transport for an `http://addr:port` or `https://addr:port` URL (HTTPS needs the CA that signed the
/// server's certificate).
pub(crate) fn tenant_transport(url: &str, key: String, ca: Option<PathBuf>) -> anyhow::Result<Transport> {
    let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => bail!("the admin URL must start with http:// or https:// (got {url:?})"),
    };
    let host = rest.trim_end_matches('/');
    let addr: SocketAddr = host.parse().with_context(|| format!("{host:?} is not an address:port"))?;
    if !tls {
        return Ok(Transport::Tcp { addr, key });
    }
    let ca = ca.context("an https:// admin URL needs --ca (the certificate that signed the server's)")?;
    Ok(Transport::Tls { addr, host: addr.ip().to_string(), key, ca })
}

fn tls_connector(ca: &std::path::Path) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        rustls_pki_types::CertificateDer::pem_file_iter(ca).with_context(|| format!("cannot read {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("bad PEM in {}", ca.display()))?)?;
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)))
}

/// Why a command against the API did not succeed, by what the caller can do about it (see [`Failure::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The server answered and refused (4xx): the request must change.
    #[error("{}", describe(*status, code, message, problems))]
    Refused { status: u16, code: String, message: String, problems: Vec<String> },
    /// The server failed (5xx): the same request may succeed later.
    #[error("{}", describe(*status, code, message, problems))]
    Failed { status: u16, code: String, message: String, problems: Vec<String> },
    /// No answer at all: the server is not there, or not reachable.
    #[error("{0}")]
    Unreachable(String),
}

impl Failure {
    /// The exit code: 3 for a refusal, 4 for a failure or no answer (2 is a usage error, 1 anything else).
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Refused { .. } => 3,
            Failure::Failed { .. } | Failure::Unreachable(_) => 4,
        }
    }

    /// The same error as one JSON object, for `--json`: `{"status","code","message","problems"}`.
    pub fn to_json(&self) -> Value {
        match self {
            Failure::Refused { status, code, message, problems }
            | Failure::Failed { status, code, message, problems } => {
                serde_json::json!({ "status": status, "code": code, "message": message, "problems": problems })
            }
            Failure::Unreachable(message) => serde_json::json!({ "code": "unreachable", "message": message }),
        }
    }

    fn of(answer: &Answer) -> Failure {
        let error = &answer.body["error"];
        let status = answer.status.as_u16();
        let code = error["code"].as_str().unwrap_or("error").to_string();
        let message = error["message"].as_str().map(str::to_string).unwrap_or_else(|| answer.text.trim().to_string());
        let problems = error["problems"]
            .as_array()
            .map(|a| a.iter().map(|p| p.as_str().unwrap_or_default().to_string()).collect())
            .unwrap_or_default();
        if answer.status.is_server_error() {
            Failure::Failed { status, code, message, problems }
        } else {
            Failure::Refused { status, code, message, problems }
        }
    }
}

fn describe(status: u16, code: &str, message: &str, problems: &[String]) -> String {
    let mut text = format!("{status} {code}: {message}");
    for p in problems {
        text.push_str(&format!("\n  {p}"));
    }
    text
}

/// Prints an answer: JSON (`--json`) or text for people; an error answer is returned as a [`Failure`].
pub fn print(answer: &Answer, output: super::OutputArgs) -> anyhow::Result<()> {
    if !answer.status.is_success() {
        return Err(Failure::of(answer).into());
    }
    match &answer.body {
        Value::Null => crate::out!("{}", answer.text),
        body if output.json => crate::outln!("{}", serde_json::to_string_pretty(body).unwrap_or_default()),
        body => crate::out!("{}", super::render::render(body, super::render::Style { utc: output.utc })),
    }
    Ok(())
}
