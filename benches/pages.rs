#![allow(clippy::unwrap_used)]
//! The citizen's pages, one request at a time on loopback: the median and 95th percentile of
//! the time from sending a `GET` to the last byte of the page (server render plus the HTTP
//! round trip, so an upper bound of the render), and each page's weight, the HTML with the
//! stylesheet and scripts it links.
//!
//!     cargo bench --bench pages                 # 500 requests per page
//!     BENCH_REQUESTS=2000 cargo bench --bench pages

use std::time::Instant;

use drawbridge_test_support::{citizen_pages, spawn_app};

fn main() {
    let requests: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = spawn_app().await;
        app.load_demo().await;
        let code_page = app.register_on_the_form("0171 5559900").await;
        let pages = citizen_pages(&code_page);
        println!("{:<48} {:>10} {:>10} {:>10}", "page", "median", "p95", "weight");
        for page in &pages {
            let mut times = Vec::with_capacity(requests);
            for _ in 0..requests {
                let start = Instant::now();
                let response = app.get(page).await;
                assert_eq!(response.status(), 200, "{page}");
                response.bytes().await.unwrap();
                times.push(start.elapsed());
            }
            times.sort();
            let median = times[times.len() / 2];
            let p95 = times[times.len() * 95 / 100];
            let weight = app.page_weight(page).await;
            let shown: String = page.chars().take(48).collect();
            println!(
                "{shown:<48} {:>7.2} ms {:>7.2} ms {:>7.1} KB",
                median.as_secs_f64() * 1e3,
                p95.as_secs_f64() * 1e3,
                weight as f64 / 1024.0
            );
        }
        app.stop().await;
    });
}
