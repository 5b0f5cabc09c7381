//! Entry points of the fuzz targets in `fuzz/` (cargo-fuzz; README,
//! *Fuzzing*). Each hands bytes from outside to the code that reads them,
//! as the product does, and checks what must hold whatever the bytes. Not
//! an API: hidden from the docs, and nothing in the product calls it. It
//! lives in the crate so that the main build compiles and lints it.
//!
//! An `Err` is a promise the bytes broke (the fuzz target turns it into a
//! crash); a panic inside is a defect found.

mod ingest;
mod replies;

pub use ingest::ingest;
pub use replies::{collaborator, gestimum, maarch, pleasanter, scim};

use crate::connectors::http::Reply;

/// What a fuzz entry point found wrong.
pub type Broken = String;

/// A server's reply as the fuzz targets write it: the status on the first
/// line, the `Retry-After` header on the second (empty: none), the body
/// after that. A first line that is no status reads as 200. The body is
/// text, decoded as the HTTP client decodes it (invalid UTF-8 replaced).
pub fn reply(data: &[u8]) -> Reply {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let mut line = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let status = line().trim().parse().unwrap_or(200);
    let retry_after = Some(line()).filter(|value| !value.trim().is_empty());
    Reply {
        status,
        body: line(),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_reply_is_its_status_retry_after_and_body() {
        let reply = reply(b"503\n120\n{\"detail\":\"busy\"}\nmore");
        assert_eq!(reply.status, 503);
        assert_eq!(reply.retry_after.as_deref(), Some("120"));
        assert_eq!(reply.body, "{\"detail\":\"busy\"}\nmore");
        let bare = super::reply(b"garbage");
        assert_eq!(
            (bare.status, bare.retry_after, bare.body.as_str()),
            (200, None, "")
        );
    }

    /// The committed seeds (`fuzz/seeds/TARGET/`) go through their entry
    /// point: every promise kept, so the seeds stay a valid start.
    #[test]
    fn every_seed_keeps_its_target_s_promises() {
        type Entry = fn(&[u8]) -> Result<(), Broken>;
        let targets: [(&str, Entry); 6] = [
            ("ingest", ingest),
            ("collaborator", collaborator),
            ("gestimum", gestimum),
            ("pleasanter", pleasanter),
            ("maarch", maarch),
            ("scim", scim),
        ];
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
        for (target, entry) in targets {
            let mut count = 0;
            for file in std::fs::read_dir(seeds.join(target)).unwrap() {
                let path = file.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                assert_eq!(entry(&data), Ok(()), "{}", path.display());
                count += 1;
            }
            assert!(count >= 3, "{target}: {count} seeds");
        }
    }
}
