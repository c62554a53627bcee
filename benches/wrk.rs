//! Running `wrk` on its own CPU and reading its report, for the HTTP benches
//! (`#[path]`-included by `load.rs` and `binary.rs`).

use std::path::Path;
use std::process::Command;

/// The CPU wrk runs on; servers run on the others.
pub(crate) const WRK_CPU: &str = "1";

/// What one wrk run reported.
pub(crate) struct Report {
    pub(crate) rps: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) requests: f64,
}

/// `wrk -t1 -c16 --latency` for `seconds` against `url` with the Lua `script` (given `env`),
/// pinned to [`WRK_CPU`]. Panics on non-2xx answers: a bench of errors measures nothing.
pub(crate) fn wrk(url: &str, script: &Path, env: &[(&str, &str)], seconds: u32) -> Report {
    let output = Command::new("taskset")
        .args(["-c", WRK_CPU, "wrk", "-t1", "-c16"])
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .envs(env.iter().copied())
        .output()
        .expect("taskset and wrk are needed (apt-get install util-linux wrk)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.trim_start()[prefix.len()..].trim().to_owned())
    };
    let non2xx = field("Non-2xx or 3xx responses:").unwrap_or_default();
    assert!(non2xx.is_empty(), "non-2xx responses: {non2xx}\n{text}");
    Report {
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN),
        p50_us: field("50%").map_or(f64::NAN, |v| micros(&v)),
        p99_us: field("99%").map_or(f64::NAN, |v| micros(&v)),
        requests: text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(f64::NAN),
    }
}

/// wrk's latency text (`412.00us`, `1.20ms`) in microseconds.
fn micros(text: &str) -> f64 {
    let (number, unit) = text.trim().split_at(
        text.trim()
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text.len()),
    );
    let n: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n,
        "ms" => n * 1_000.0,
        "s" => n * 1_000_000.0,
        _ => f64::NAN,
    }
}

/// The median (the upper one of an even count).
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
