//! One middleware for every HTTP server: a `tracing` span per request and request counts and
//! latencies per route for `/metrics`. It does no work before routing (no path matching, no
//! header parsing, no random id unless the span is recorded), because status polls in a surge
//! arrive by the hundred thousand per second.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tracing::field::Empty;
use tracing::Instrument;

pub struct HttpMetrics {
    requests: IntCounterVec,
    seconds: HistogramVec,
}

impl HttpMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )?;
        let seconds = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route").buckets(
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            ),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        Ok(HttpMetrics { requests, seconds })
    }
}

/// Middleware: the request's span, and its metrics labelled by the matched route pattern (not
/// the raw path, so ids in paths do not explode the number of series). The route is read
/// after routing, when actix has it at hand, and recorded on the span then.
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = request.path(),
        route = Empty,
        status = Empty,
        request_id = Empty,
    );
    if !span.is_disabled() {
        span.record("request_id", tracing::field::display(uuid::Uuid::new_v4()));
    }
    let metrics = request.app_data::<web::Data<HttpMetrics>>().cloned();
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let outcome = next.call(request).instrument(span.clone()).await;
    let (route, status) = match &outcome {
        Ok(response) => (response.request().match_pattern(), response.status()),
        Err(error) => (None, error.as_response_error().status_code()),
    };
    let route = route.as_deref().unwrap_or("unmatched");
    span.record("route", route);
    span.record("status", status.as_u16());
    if let Some(metrics) = metrics {
        metrics
            .requests
            .with_label_values(&[method.as_str(), route, status.as_str()])
            .inc();
        metrics
            .seconds
            .with_label_values(&[route])
            .observe(started.elapsed().as_secs_f64());
    }
    outcome
}
