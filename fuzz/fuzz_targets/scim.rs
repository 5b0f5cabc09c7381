//! Fuzz target: a SCIM provider's reply (discovery documents, list pages, resources, errors)
//! through the scim connector's reading of it (`rostersync::fuzzing::scim`). A broken promise
//! is a crash, as a panic is.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = rostersync::fuzzing::scim(data) {
        panic!("{broken}");
    }
});
