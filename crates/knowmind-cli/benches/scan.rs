//! How fast `knowmind scan` reads a large tree, beside ripgrep with the same regular expression
//! on the same files, in one run; and how long `--git-history` takes on 10,000 commits.
//!
//! `cargo bench -p knowmind-cli --bench scan` (the first run generates a 512 MB corpus in a
//! temporary directory and installs Debian's ripgrep when `rg` is missing). Figures in
//! docs/BENCHMARKS.md.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use token_core::{Token, TokenKind};

const BIN: &str = env!("CARGO_BIN_EXE_knowmind");
const FILES: usize = 512;
const FILE_BYTES: usize = 1 << 20;
const ROUNDS: usize = 5;

/// A small, fast generator (xorshift): the corpus needs variety, not secrecy.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const WORDS: [&str; 16] = [
    "let", "fn", "return", "config", "token", "value", "client", "server", "request", "kmt",
    "self", "match", "impl", "struct", "user", "expires",
];

/// One source-like file: code-ish lines, random ids, and near-miss tokens (right shape, wrong
/// checksum), roughly one every 4 KiB.
fn file(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(FILE_BYTES + 256);
    while out.len() < FILE_BYTES {
        match rng.below(40) {
            0 => {
                let prefix = ["kmt_", "kmo_", "kmr_", "kmc_"][rng.below(4)];
                out.extend_from_slice(b"    let key = \"");
                out.extend_from_slice(prefix.as_bytes());
                for _ in 0..54 {
                    out.push(BASE62[rng.below(62)]);
                }
                out.extend_from_slice(b"\";\n");
            }
            1 => {
                out.extend_from_slice(b"    // id ");
                for _ in 0..(8 + rng.below(60)) {
                    out.push(BASE62[rng.below(62)]);
                }
                out.push(b'\n');
            }
            _ => {
                out.extend_from_slice(b"    ");
                for _ in 0..(3 + rng.below(8)) {
                    out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
                    out.push([b' ', b'.', b'(', b'_'][rng.below(4)]);
                }
                out.extend_from_slice(b";\n");
            }
        }
    }
    out
}

fn corpus(dir: &Path) -> Vec<String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut planted = Vec::new();
    for i in 0..FILES {
        let mut content = file(&mut rng);
        if i % 100 == 7 {
            let token =
                Token::generate_kind(&mut token_core::rand::rngs::SysRng, TokenKind::ALL[i % 4])
                    .unwrap();
            let line = format!("\nSECRET = \"{}\"\n", token.expose_secret());
            let at = content.len() / 2;
            let at = at + content[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
            content.splice(at..at, line.bytes().skip(1));
            planted.push(token.id().to_string());
        }
        let sub = dir.join(format!("src{}", i % 16));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("file{i}.rs")), content).unwrap();
    }
    planted.sort();
    planted
}

fn ripgrep() -> String {
    if Command::new("rg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return "rg".into();
    }
    eprintln!("installing ripgrep from Debian's packages");
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq", "ripgrep"])
        .status();
    "rg".into()
}

fn timed(command: &mut Command) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let out = command.stderr(Stdio::null()).output().unwrap();
    (started.elapsed(), out.stdout)
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

/// A repository of 10,000 commits through `git fast-import`: each commit changes one file; a
/// few add a token, which a later commit deletes.
fn history(dir: &Path) -> Vec<String> {
    Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .arg(dir)
        .status()
        .unwrap();
    let mut import = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stream = std::io::BufWriter::new(import.stdin.take().unwrap());
    let mut rng = Rng(42);
    let mut planted = Vec::new();
    for n in 1..=10_000u32 {
        let mut content = file(&mut rng);
        content.truncate(2_048);
        if n % 2_000 == 500 {
            let token = Token::generate(&mut token_core::rand::rngs::SysRng).unwrap();
            content.extend_from_slice(format!("\nTOKEN={}\n", token.expose_secret()).as_bytes());
            planted.push(token.id().to_string());
        }
        writeln!(stream, "commit refs/heads/main\nmark :{n}").unwrap();
        writeln!(
            stream,
            "committer Bench <bench@example.org> {} +0000",
            1_700_000_000 + n
        )
        .unwrap();
        writeln!(stream, "data 3\nc{}", n % 10).unwrap();
        if n > 1 {
            writeln!(stream, "from :{}", n - 1).unwrap();
        }
        writeln!(
            stream,
            "M 100644 inline f{}.txt\ndata {}",
            n % 50,
            content.len()
        )
        .unwrap();
        stream.write_all(&content).unwrap();
        writeln!(stream).unwrap();
    }
    drop(stream);
    assert!(import.wait().unwrap().success());
    planted.sort();
    planted
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench --no-run` and test listings: nothing to list
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let started = Instant::now();
    let planted = corpus(&tree);
    let bytes = (FILES * FILE_BYTES) as f64;
    eprintln!(
        "corpus: {} files, {:.0} MB, {} tokens planted ({:.1} s)",
        FILES,
        bytes / 1e6,
        planted.len(),
        started.elapsed().as_secs_f64()
    );
    let rg = ripgrep();
    let pattern = token_core::TOKEN_REGEX;
    // Warm the page cache, and check what each finds.
    let (_, found) = timed(
        Command::new(BIN)
            .args(["scan", "--format", "json"])
            .arg(&tree),
    );
    let found: serde_json::Value = serde_json::from_slice(&found).unwrap();
    let mut ids: Vec<String> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["token_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(
        ids, planted,
        "knowmind scan finds exactly the planted tokens"
    );
    let (_, rg_lines) = timed(
        Command::new(&rg)
            .args(["--count-matches", "--no-filename", "-e", pattern])
            .arg(&tree),
    );
    let candidates: usize = String::from_utf8_lossy(&rg_lines)
        .lines()
        .filter_map(|l| l.parse::<usize>().ok())
        .sum();
    eprintln!(
        "ripgrep matches {candidates} candidates (near-misses included); knowmind keeps {}",
        ids.len()
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ours.push(timed(Command::new(BIN).args(["scan", "--quiet"]).arg(&tree)).0);
        theirs.push(
            timed(
                Command::new(&rg)
                    .args(["--count-matches", "-e", pattern])
                    .arg(&tree),
            )
            .0,
        );
    }
    let (ours, theirs) = (median(ours), median(theirs));
    let throughput = |d: Duration| bytes / d.as_secs_f64() / 1e6;
    println!(
        "scan of {:.0} MB: knowmind {:.3} s ({:.0} MB/s), ripgrep {:.3} s ({:.0} MB/s): {:.2} of ripgrep's throughput",
        bytes / 1e6,
        ours.as_secs_f64(),
        throughput(ours),
        theirs.as_secs_f64(),
        throughput(theirs),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );

    let repo = dir.path().join("repo");
    let planted = history(&repo);
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["scan", "--git-history", "--format", "json", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    let took = started.elapsed();
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut ids: Vec<String> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["token_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids, planted,
        "the history scan finds exactly the planted tokens"
    );
    println!(
        "--git-history on 10,000 commits: {:.2} s, {} tokens found with their commits",
        took.as_secs_f64(),
        ids.len()
    );
}
