//! The pure cost of personal data at rest on one registration: sealing a phone number and an
//! email address, opening them again and the phone's blind index, without any I/O.
//!
//! `cargo bench -p drawbridge-domain --bench personal_data`

use criterion::{criterion_group, criterion_main, Criterion};
use drawbridge_domain::{Field, PersonalDataKeys, SealingKey};
use uuid::Uuid;

fn bench(c: &mut Criterion) {
    let keys = PersonalDataKeys::new(
        vec![SealingKey {
            id: "2026-12".into(),
            key: [7; 32],
        }],
        b"a hash key of thirty-two bytes!!",
    )
    .expect("one valid key");
    let owner = Uuid::from_u128(1);
    let (phone, email) = ("+4917155590001", "anna.schmidt@example.de");
    c.bench_function("seal phone and email, open both, index phone", |b| {
        b.iter(|| {
            let sealed_phone = keys.seal(Field::Phone, owner, phone);
            let sealed_email = keys.seal(Field::Email, owner, email);
            let index = keys.index(Field::Phone, phone);
            let opened = keys
                .open(Field::Phone, owner, &sealed_phone)
                .expect("opens")
                .len()
                + keys
                    .open(Field::Email, owner, &sealed_email)
                    .expect("opens")
                    .len();
            (index, opened)
        })
    });
    c.bench_function("index phone", |b| b.iter(|| keys.index(Field::Phone, phone)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
