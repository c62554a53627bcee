//! token-core: generation, parsing (valid and invalid), hashing and verification.
//!
//! `cargo bench -p knowmind-benches --bench token_core`; figures in `docs/BENCHMARKS.md`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use token_core::rand::SeedableRng;
use token_core::{HashParams, Token, TokenHash};

fn generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    group.bench_function("os_rng", |b| {
        b.iter(|| Token::generate(&mut token_core::rand::rngs::SysRng).unwrap())
    });
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    group.bench_function("chacha20", |b| {
        b.iter(|| Token::generate(&mut rng).unwrap())
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let valid = Token::generate(&mut rng)
        .unwrap()
        .expose_secret()
        .to_owned();
    let mut bad_checksum = valid.clone().into_bytes();
    bad_checksum[20] = if bad_checksum[20] == b'a' { b'b' } else { b'a' };
    let bad_checksum = String::from_utf8(bad_checksum).unwrap();
    let mut group = c.benchmark_group("parse");
    group.bench_function("valid", |b| {
        b.iter(|| black_box(&valid).parse::<Token>().unwrap())
    });
    group.bench_function("bad_checksum", |b| {
        b.iter(|| black_box(&bad_checksum).parse::<Token>().unwrap_err())
    });
    group.bench_function("wrong_prefix", |b| {
        b.iter(|| {
            black_box("ghp_0123456789abcdef")
                .parse::<Token>()
                .unwrap_err()
        })
    });
    group.bench_function("wrong_length", |b| {
        b.iter(|| black_box(&valid[..40]).parse::<Token>().unwrap_err())
    });
    group.finish();
}

fn hashing(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let token = Token::generate(&mut rng).unwrap();
    for (name, params) in [
        ("default", HashParams::DEFAULT),
        ("test", HashParams::insecure_for_tests()),
    ] {
        let stored = TokenHash::new(&token, &params, &mut rng).unwrap();
        let mut group = c.benchmark_group(format!("scrypt_{name}"));
        if name == "default" {
            group
                .sample_size(20)
                .measurement_time(Duration::from_secs(8));
        }
        group.bench_function("hash", |b| {
            b.iter(|| TokenHash::new(&token, &params, &mut rng).unwrap())
        });
        group.bench_function("verify", |b| b.iter(|| stored.verify(&token).unwrap()));
        group.finish();
    }
}

criterion_group!(benches, generate, parse, hashing);
criterion_main!(benches);
