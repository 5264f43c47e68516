//! Prometheus metrics, kept in-process: request counts and latency histograms by route
//! pattern (not raw path, so ids do not explode the label space) and status.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum_seconds: f64,
    /// Non-cumulative counts per bucket; rendered cumulatively.
    buckets: [u64; BUCKETS.len()],
}

#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let s = series
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        s.count += 1;
        s.sum_seconds += seconds;
        if let Some(i) = BUCKETS.iter().position(|&upper| seconds <= upper) {
            s.buckets[i] += 1;
        }
    }

    pub fn render(&self) -> String {
        let series = self
            .series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut out = String::new();
        out.push_str("# HELP cmo_http_requests_total HTTP requests served, by method, route pattern and status.\n");
        out.push_str("# TYPE cmo_http_requests_total counter\n");
        for ((method, route, status), s) in &series {
            let _ = writeln!(
                out,
                "cmo_http_requests_total{{{}}} {}",
                labels(method, route, *status),
                s.count
            );
        }
        out.push_str("# HELP cmo_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE cmo_http_request_duration_seconds histogram\n");
        for ((method, route, status), s) in &series {
            let l = labels(method, route, *status);
            let mut cumulative = 0;
            for (upper, n) in BUCKETS.iter().zip(s.buckets.iter()) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "cmo_http_request_duration_seconds_bucket{{{l},le=\"{upper}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "cmo_http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "cmo_http_request_duration_seconds_sum{{{l}}} {}",
                s.sum_seconds
            );
            let _ = writeln!(
                out,
                "cmo_http_request_duration_seconds_count{{{l}}} {}",
                s.count
            );
        }
        out
    }
}

fn labels(method: &str, route: &str, status: u16) -> String {
    format!(
        "method=\"{}\",route=\"{}\",status=\"{status}\"",
        escape(method),
        escape(route)
    )
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_cumulative_buckets_are_rendered() {
        let m = Metrics::default();
        m.observe("GET", "/api/v1/users/{id}", 200, Duration::from_millis(3));
        m.observe("GET", "/api/v1/users/{id}", 200, Duration::from_millis(30));
        let text = m.render();
        assert!(text.contains(
            r#"cmo_http_requests_total{method="GET",route="/api/v1/users/{id}",status="200"} 2"#
        ));
        assert!(text.contains(r#"le="0.005"} 1"#));
        assert!(text.contains(r#"le="0.05"} 2"#));
        assert!(text.contains(r#"le="+Inf"} 2"#));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
