//! Micro-benchmarks of the work behind a login and a file request:
//! TOTP verification, argon2id at the default cost, sealing and opening a
//! TOTP seed with the data key, and resolving a path under a home folder.
//!
//! `cargo bench --bench micro` (add `-- NAME` to run one group).

use std::hint::black_box;

use coffer::auth::password::{self, HashCost};
use coffer::auth::totp::{Algorithm, Params};
use coffer::files::Access;
use coffer::files::{Follow, Root, VPath};
use coffer::seal::DataKey;
use criterion::{Criterion, criterion_group, criterion_main};

fn totp(c: &mut Criterion) {
    let seed = [7u8; 20];
    let params = Params {
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
    };
    let now = 1_750_000_000;
    let code = params.code_at_step(&seed, params.step(now));
    c.bench_function("totp/check (sha1, ±1 step)", |b| {
        b.iter(|| params.check(black_box(&seed), black_box(code.as_str()), now, None))
    });
    c.bench_function("totp/check wrong code", |b| {
        b.iter(|| params.check(black_box(&seed), black_box("000000"), now, None))
    });
}

fn argon2(c: &mut Criterion) {
    let cost = HashCost::default();
    let pool = password::Hashing::new(1);
    let Some(mut lease) = pool.lease(std::time::Duration::ZERO) else {
        return;
    };
    let Ok(phc) = lease.hash("correct-horse-battery-staple-9", cost) else {
        return;
    };
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(10);
    // One lease for every run: its working memory is reused, as in a burst.
    group.bench_function(format!("verify at the default cost ({cost})"), |b| {
        b.iter(|| lease.verify(black_box("correct-horse-battery-staple-9"), &phc))
    });
    group.finish();
}

fn seal(c: &mut Criterion) {
    let Ok((key, _)) = DataKey::generate() else {
        return;
    };
    let seed = [9u8; 20];
    let context = b"account\0enrolment-1";
    let Ok(blob) = key.encrypt(context, &seed) else {
        return;
    };
    c.bench_function("seal/encrypt a TOTP seed", |b| {
        b.iter(|| key.encrypt(black_box(context), black_box(&seed)))
    });
    c.bench_function("seal/decrypt a TOTP seed", |b| {
        b.iter(|| key.decrypt(black_box(context), black_box(&blob)))
    });
}

fn confinement(c: &mut Criterion) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let deep = dir.path().join("a/b/c/d");
    if std::fs::create_dir_all(&deep).is_err() || std::fs::write(deep.join("f.txt"), b"x").is_err()
    {
        return;
    }
    let permissions = Access {
        write: true,
        delete: true,
    };
    let Ok(root) = Root::open(dir.path(), "bench", permissions) else {
        return;
    };
    c.bench_function("path/parse a client path", |b| {
        b.iter(|| VPath::parse(black_box(b"/a/./b/../b/c/d/f.txt")))
    });
    let Ok(path) = VPath::parse(b"/a/b/c/d/f.txt") else {
        return;
    };
    c.bench_function(
        "path/stat 5 levels under the home (openat2 RESOLVE_BENEATH)",
        |b| b.iter(|| root.stat(black_box(&path), Follow::Yes)),
    );
    let Ok(escape) = VPath::parse(b"/../../../etc/passwd") else {
        return;
    };
    c.bench_function("path/stat an escaping path", |b| {
        b.iter(|| root.stat(black_box(&escape), Follow::Yes))
    });
}

criterion_group!(benches, totp, argon2, seal, confinement);
criterion_main!(benches);
