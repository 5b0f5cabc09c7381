//! Fuzz target: a server's reply (status, Retry-After, body) through the pleasanter
//! connector's reading of it (`rostersync::fuzzing::pleasanter`). A broken promise is a
//! crash, as a panic is.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = rostersync::fuzzing::pleasanter(data) {
        panic!("{broken}");
    }
});
