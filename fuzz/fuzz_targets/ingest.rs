//! Fuzz target: a dropped file's bytes through ingest (decoding, dialect and header
//! detection, the rows and their checks), for users and organisations
//! (`rostersync::fuzzing::ingest`). A broken promise is a crash, as a panic is.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = rostersync::fuzzing::ingest(data) {
        panic!("{broken}");
    }
});
