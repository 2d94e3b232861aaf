//! One middleware for every HTTP server: a `tracing` span per request and request counts and
//! latencies per route for `/metrics`. It does no work before routing (no path matching, no
//! header parsing, no random id unless the span is recorded), and it touches nothing another
//! thread touches, because status polls in a surge arrive by the hundred thousand per second.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::Registry;
use rustc_hash::FxHashMap;
use tracing::field::Empty;
use tracing::Instrument;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const REQUESTS: &str = "http_requests_total";
const SECONDS: &str = "http_request_duration_seconds";

/// Requests by method, route and status, and their latencies by route. Each worker thread
/// counts into a shard of its own, under a lock no other thread takes between scrapes, and a
/// scrape adds the shards up: shared counters are cache lines bounced between the cores on
/// every request, and with them this middleware cost a status poll a tenth of its throughput.
pub struct HttpMetrics {
    /// Tells this server's shards from another's on the same thread (tests run several).
    id: usize,
    shards: Mutex<Vec<Arc<Mutex<Shard>>>>,
    descs: Vec<Desc>,
}

/// One thread's counts.
#[derive(Default)]
struct Shard(FxHashMap<(Method, String, u16), Series>);

#[derive(Default, Clone)]
struct Series {
    count: u64,
    seconds: f64,
    /// Requests per bucket (not cumulative); the rest took longer than the last bound.
    buckets: [u64; BUCKETS.len()],
}

impl Series {
    fn add(&mut self, other: &Series) {
        self.count += other.count;
        self.seconds += other.seconds;
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
    }
}

impl HttpMetrics {
    /// Registers the metrics with `registry`; the middleware finds them as app data.
    pub fn register(registry: &Registry) -> prometheus::Result<web::Data<HttpMetrics>> {
        static IDS: AtomicUsize = AtomicUsize::new(0);
        let help_requests = "HTTP requests by route and status";
        let help_seconds = "HTTP request latency by route";
        let label = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        let metrics = web::Data::new(HttpMetrics {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            shards: Mutex::default(),
            descs: vec![
                Desc::new(
                    REQUESTS.into(),
                    help_requests.into(),
                    label(&["method", "route", "status"]),
                    Default::default(),
                )?,
                Desc::new(
                    SECONDS.into(),
                    help_seconds.into(),
                    label(&["route"]),
                    Default::default(),
                )?,
            ],
        });
        registry.register(Box::new(Collected(metrics.clone().into_inner())))?;
        Ok(metrics)
    }

    fn record(&self, method: &Method, route: String, status: u16, seconds: f64) {
        thread_local! {
            static SHARDS: RefCell<Vec<(usize, Arc<Mutex<Shard>>)>> = const { RefCell::new(Vec::new()) };
        }
        SHARDS.with(|shards| {
            let mut shards = shards.borrow_mut();
            let at = match shards.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    let shard = Arc::<Mutex<Shard>>::default();
                    self.shards.lock().expect("poisoned").push(shard.clone());
                    shards.push((self.id, shard));
                    shards.len() - 1
                }
            };
            let mut shard = shards[at].1.lock().expect("poisoned");
            let series = shard.0.entry((method.clone(), route, status)).or_default();
            series.count += 1;
            series.seconds += seconds;
            if let Some(bucket) = BUCKETS.iter().position(|&bound| seconds <= bound) {
                series.buckets[bucket] += 1;
            }
        });
    }

    /// Every thread's counts added up, by method, route and status.
    fn totals(&self) -> BTreeMap<(String, String, u16), Series> {
        let mut totals: BTreeMap<(String, String, u16), Series> = BTreeMap::new();
        for shard in self.shards.lock().expect("poisoned").iter() {
            for ((method, route, status), series) in &shard.lock().expect("poisoned").0 {
                totals
                    .entry((method.to_string(), route.clone(), *status))
                    .or_default()
                    .add(series);
            }
        }
        totals
    }
}

/// The registry's handle on the metrics.
struct Collected(Arc<HttpMetrics>);

fn label(name: &str, value: &str) -> proto::LabelPair {
    let mut pair = proto::LabelPair::default();
    pair.set_name(name.into());
    pair.set_value(value.into());
    pair
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.into());
    family.set_help(help.into());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

impl Collector for Collected {
    fn desc(&self) -> Vec<&Desc> {
        self.0.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let totals = self.0.totals();
        let mut by_route: BTreeMap<&str, Series> = BTreeMap::new();
        let mut requests = Vec::new();
        for ((method, route, status), series) in &totals {
            by_route.entry(route).or_default().add(series);
            let mut counter = proto::Counter::default();
            counter.set_value(series.count as f64);
            let mut metric = proto::Metric::default();
            metric.set_label(vec![
                label("method", method),
                label("route", route),
                label("status", &status.to_string()),
            ]);
            metric.set_counter(counter);
            requests.push(metric);
        }
        let latencies = by_route
            .into_iter()
            .map(|(route, series)| {
                let mut cumulative = 0;
                let buckets = BUCKETS
                    .iter()
                    .zip(series.buckets)
                    .map(|(&bound, count)| {
                        cumulative += count;
                        let mut bucket = proto::Bucket::default();
                        bucket.set_upper_bound(bound);
                        bucket.set_cumulative_count(cumulative);
                        bucket
                    })
                    .collect();
                let mut histogram = proto::Histogram::default();
                histogram.set_sample_count(series.count);
                histogram.set_sample_sum(series.seconds);
                histogram.set_bucket(buckets);
                let mut metric = proto::Metric::default();
                metric.set_label(vec![label("route", route)]);
                metric.set_histogram(histogram);
                metric
            })
            .collect();
        let descs = &self.0.descs;
        vec![
            family(REQUESTS, descs[0].help.as_str(), MetricType::COUNTER, requests),
            family(SECONDS, descs[1].help.as_str(), MetricType::HISTOGRAM, latencies),
        ]
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
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let outcome = next.call(request).instrument(span.clone()).await;
    let seconds = started.elapsed().as_secs_f64();
    // Handlers' errors arrive as responses; an `Err` here comes from no handler, and has no
    // request left to count it against.
    match &outcome {
        Ok(response) => {
            let route = response.request().match_pattern();
            let route = route.unwrap_or_else(|| "unmatched".into());
            let status = response.status();
            span.record("route", route.as_str());
            span.record("status", status.as_u16());
            if let Some(metrics) = response.request().app_data::<web::Data<HttpMetrics>>() {
                metrics.record(&method, route, status.as_u16(), seconds);
            }
        }
        Err(error) => {
            span.record("status", error.as_response_error().status_code().as_u16());
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use actix_web::{test, App, HttpResponse};

    use super::*;

    #[actix_web::test]
    async fn counts_every_thread_by_route_and_buckets_latency() {
        let registry = Registry::new();
        let metrics = HttpMetrics::register(&registry).unwrap();
        let app = test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(observe))
                .app_data(metrics.clone())
                .route("/items/{id}", web::get().to(HttpResponse::Ok)),
        )
        .await;
        for path in ["/items/1", "/items/2", "/nothing"] {
            test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
        }
        // Another thread's requests land in another shard and still count.
        let other = metrics.clone();
        std::thread::spawn(move || other.record(&Method::POST, "/items/{id}".into(), 500, 3.0))
            .join()
            .unwrap();

        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        for line in [
            r#"http_requests_total{method="GET",route="/items/{id}",status="200"} 2"#,
            r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
            r#"http_requests_total{method="POST",route="/items/{id}",status="500"} 1"#,
            r#"http_request_duration_seconds_bucket{route="/items/{id}",le="2.5"} 2"#,
            r#"http_request_duration_seconds_bucket{route="/items/{id}",le="+Inf"} 3"#,
            r#"http_request_duration_seconds_count{route="/items/{id}"} 3"#,
            "# TYPE http_request_duration_seconds histogram",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
