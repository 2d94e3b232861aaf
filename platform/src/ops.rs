//! The operational endpoints every component serves: `/healthz` (the process is alive),
//! `/readyz` (its dependencies answer, so a load balancer may send traffic; optional ones may be
//! away, degraded) and `/metrics` (Prometheus text format), which only operations may read:
//! it lists every waiting room and every route's traffic.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{middleware, web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::future::{join_all, BoxFuture};
use prometheus::{Encoder, Registry, TextEncoder};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::http_telemetry::{self, HttpMetrics};

/// How long one dependency may take to answer a readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The dependencies a component needs before it can do useful work, and those it can serve
/// without for a while, degraded.
#[derive(Clone, Default)]
pub struct Readiness {
    probes: Vec<(&'static str, Probe, Need)>,
}

/// What a component can do without a dependency.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Nothing useful: not ready without it.
    Required,
    /// Serve, degraded (e.g. the gateway without Redis: docs/operations.md).
    Optional,
}

/// What a readiness check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    Yes,
    /// Every required dependency answers, an optional one does not.
    Degraded,
    No,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn probe<F, Fut>(mut self, name: &'static str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.probes
            .push((name, Arc::new(move || Box::pin(probe())), Need::Required));
        self
    }

    /// Makes the last probe optional: its failure is reported, and the component stays ready,
    /// degraded, so a load balancer keeps sending it what it can still serve.
    pub fn optional(mut self) -> Self {
        if let Some((_, _, need)) = self.probes.last_mut() {
            *need = Need::Optional;
        }
        self
    }

    pub fn postgres(self, pool: PgPool) -> Self {
        self.probe("postgres", move || {
            let pool = pool.clone();
            async move { crate::postgres::ping(&pool).await }
        })
    }

    pub fn redis(self, pool: deadpool_redis::Pool) -> Self {
        self.probe("redis", move || {
            let pool = pool.clone();
            async move { crate::redis::ping(&pool).await }
        })
    }

    /// Runs every probe concurrently: ready if all of them answer in time, degraded if only
    /// optional ones do not.
    pub async fn check(&self) -> (Ready, BTreeMap<&'static str, String>) {
        let results = join_all(self.probes.iter().map(|(name, probe, need)| async move {
            let outcome = match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error),
                Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
            };
            (*name, *need, outcome)
        }))
        .await;
        let failing = |need: Need| {
            results
                .iter()
                .any(|(_, n, outcome)| *n == need && outcome.is_err())
        };
        let ready = if failing(Need::Required) {
            Ready::No
        } else if failing(Need::Optional) {
            Ready::Degraded
        } else {
            Ready::Yes
        };
        let report = results
            .into_iter()
            .map(|(name, _, outcome)| (name, outcome.err().unwrap_or_else(|| "ok".to_owned())))
            .collect();
        (ready, report)
    }
}

/// Mounts the three endpoints; the app must carry `Data<Readiness>` and `Data<Registry>`.
/// Who may read `/metrics`.
#[derive(Clone)]
pub enum MetricsAccess {
    /// Whoever reaches the listener.
    Open,
    /// Whoever sends `Authorization: Bearer <token>`.
    Token(SecretString),
    /// Nobody: the route is not served.
    Closed,
}

impl MetricsAccess {
    /// For a listener only operations reach (allocator, notifier): open, or behind
    /// `telemetry.metrics_token` if it is set.
    pub fn internal(token: &SecretString) -> Self {
        if token.expose_secret().is_empty() {
            MetricsAccess::Open
        } else {
            MetricsAccess::Token(token.clone())
        }
    }

    /// For a listener the internet reaches (the gateway): behind `telemetry.metrics_token`, or
    /// not served when none is set.
    pub fn public(token: &SecretString) -> Self {
        if token.expose_secret().is_empty() {
            MetricsAccess::Closed
        } else {
            MetricsAccess::Token(token.clone())
        }
    }

    fn admits(&self, request: &HttpRequest) -> bool {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match self {
            MetricsAccess::Open => true,
            MetricsAccess::Closed => false,
            MetricsAccess::Token(token) => presented.is_some_and(|presented| {
                bool::from(subtle::ConstantTimeEq::ct_eq(
                    presented.as_bytes(),
                    token.expose_secret().as_bytes(),
                ))
            }),
        }
    }
}

/// `/healthz`, `/readyz`, and `/metrics` unless `metrics` is closed.
pub fn routes(metrics: MetricsAccess) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        config
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz));
        if !matches!(metrics, MetricsAccess::Closed) {
            config
                .app_data(web::Data::new(metrics))
                .route("/metrics", web::get().to(self::metrics));
        }
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let (ready, dependencies) = readiness.check().await;
    let (mut response, status) = match ready {
        Ready::Yes => (HttpResponse::Ok(), "ready"),
        Ready::Degraded => (HttpResponse::Ok(), "degraded"),
        Ready::No => (HttpResponse::ServiceUnavailable(), "not_ready"),
    };
    response.json(serde_json::json!({ "status": status, "dependencies": dependencies }))
}

async fn metrics(
    request: HttpRequest,
    access: web::Data<MetricsAccess>,
    registry: web::Data<Registry>,
) -> HttpResponse {
    if !access.admits(&request) {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .json(serde_json::json!({ "error": {
                "code": "metrics_token_required",
                "message": "Send the metrics token (telemetry.metrics_token) as `Authorization: Bearer <token>`."
            }}));
    }
    let mut buffer = Vec::new();
    match TextEncoder::new().encode(&registry.gather(), &mut buffer) {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(buffer),
        Err(error) => HttpResponse::InternalServerError().body(error.to_string()),
    }
}

/// A small server with only the operational endpoints, for components without an API of
/// their own (allocator, notifier). It runs in the background from now on and stops
/// gracefully when `shutdown` is cancelled; await the handle to wait for that.
pub fn serve(
    listener: TcpListener,
    readiness: Readiness,
    registry: Registry,
    metrics: MetricsAccess,
    shutdown: CancellationToken,
) -> std::io::Result<JoinHandle<std::io::Result<()>>> {
    let http_metrics = HttpMetrics::register(&registry).map_err(std::io::Error::other)?;
    let readiness = web::Data::new(readiness);
    let registry = web::Data::new(registry);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(middleware::from_fn(http_telemetry::observe))
            .app_data(http_metrics.clone())
            .app_data(readiness.clone())
            .app_data(registry.clone())
            .configure(routes(metrics.clone()))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    stop_on(shutdown, server.handle());
    Ok(tokio::spawn(server))
}

/// Stops a server gracefully (finishing requests in flight) once `shutdown` is cancelled.
pub fn stop_on(shutdown: CancellationToken, handle: ServerHandle) {
    tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop(true).await;
    });
}

/// Binds a listener, naming the address when that fails.
pub fn bind(address: std::net::SocketAddr) -> Result<TcpListener, crate::StartupError> {
    TcpListener::bind(address).map_err(|error| crate::StartupError::Bind { address, error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_only_when_every_probe_answers() {
        let readiness = Readiness::new()
            .probe("good", || async { Ok(()) })
            .probe("bad", || async { Err("connection refused".to_owned()) });
        let (ready, report) = readiness.check().await;
        assert_eq!(ready, Ready::No);
        assert_eq!(report["good"], "ok");
        assert_eq!(report["bad"], "connection refused");
        let (ready, _) = Readiness::new().probe("good", || async { Ok(()) }).check().await;
        assert_eq!(ready, Ready::Yes);
    }

    #[tokio::test]
    async fn an_optional_dependency_that_fails_leaves_the_component_degraded() {
        let readiness = Readiness::new()
            .probe("good", || async { Ok(()) })
            .probe("cache", || async { Err("connection refused".to_owned()) })
            .optional();
        let (ready, report) = readiness.check().await;
        assert_eq!(ready, Ready::Degraded);
        assert_eq!(report["cache"], "connection refused");
        let with_required_failing = readiness.probe("bad", || async { Err("down".to_owned()) });
        assert_eq!(with_required_failing.check().await.0, Ready::No);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_probe_is_not_ready() {
        let readiness = Readiness::new().probe("slow", std::future::pending);
        let (ready, report) = readiness.check().await;
        assert_eq!(ready, Ready::No);
        assert!(report["slow"].contains("no answer"), "{report:?}");
    }
}
