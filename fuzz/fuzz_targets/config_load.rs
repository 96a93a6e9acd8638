//! Config parsing: `config::load_bytes` on arbitrary bytes never panics; a loaded snapshot
//! is consistent; an error never quotes the marker secret `hunter2-fuzz` when the input
//! holds it only in secret values (see `credproxy_fuzz::load_and_check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    credproxy_fuzz::load_and_check(data);
});
