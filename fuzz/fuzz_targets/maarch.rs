//! Fuzz target: a server's reply (status, Retry-After, body) through the maarch connector's
//! reading of it (`rostersync::fuzzing::maarch`). A broken promise is a crash, as a panic is.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = rostersync::fuzzing::maarch(data) {
        panic!("{broken}");
    }
});
